//! Development tokens (`herald-local token`), HS256 with the local secret.

use jsonwebtoken::{EncodingKey, Header, encode};
use serde::Serialize;
use uuid::Uuid;

#[derive(Serialize)]
struct Claims<'a> {
    sub: &'a str,
    iat: u64,
    exp: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    tenant_id: Option<Uuid>,
}

pub fn issue(
    secret: &str,
    sub: &str,
    tenant: Option<Uuid>,
    ttl_secs: u64,
) -> anyhow::Result<String> {
    let now = jsonwebtoken::get_current_timestamp();
    let claims = Claims {
        sub,
        iat: now,
        exp: now + ttl_secs,
        tenant_id: tenant,
    };
    Ok(encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )?)
}
