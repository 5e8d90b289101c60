//! API keys: a tenant's credentials for servers (a CRM syncing contacts, a backend starting
//! campaigns). A key is `hk_` and 32 random bytes (base64url); it is shown once, when made,
//! and only its hash is kept.
//!
//! The hash is HMAC-SHA-256 under a fixed context key, not a slow password hash: a key
//! holds 256 random bits, so there is no dictionary to slow down, and every request must
//! look its key up (a slow hash would cost each request milliseconds of CPU).

pub mod store;

use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::db::StoreError;
use crate::domain::{Actor, FieldError, Name, Role};

/// What every key starts with, so that secret scanners and people recognise one.
pub const PREFIX: &str = "hk_";
/// Random bytes in a key.
const KEY_BYTES: usize = 32;
/// Live keys a tenant may hold at once.
pub const MAX_LIVE_KEYS: i64 = 100;

/// A key's secret, as sent in `Authorization: Bearer hk_…`. Never logged: its `Debug` is
/// masked.
pub struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({}…)", self.prefix())
    }
}

impl Secret {
    /// A new random key.
    pub fn generate() -> Secret {
        let mut bytes = [0u8; KEY_BYTES];
        getrandom::fill(&mut bytes).expect("the OS random source works");
        let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        Secret(format!("{PREFIX}{encoded}"))
    }

    /// A bearer token that claims to be an API key; `None` when it does not look like one
    /// (it is then a JWT).
    pub fn from_bearer(token: &str) -> Option<Secret> {
        token.starts_with(PREFIX).then(|| Secret(token.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `hk_` and the next four characters: enough to tell keys apart, far too little to
    /// guess one.
    pub fn prefix(&self) -> &str {
        self.0.get(..PREFIX.len() + 4).unwrap_or(PREFIX)
    }

    pub fn hash(&self) -> [u8; 32] {
        let mut mac = Hmac::<Sha256>::new_from_slice(b"herald api key v1")
            .expect("HMAC takes a key of any length");
        mac.update(self.0.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

/// `POST /api/api-keys`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateApiKey {
    /// 1 to 200 characters, trimmed.
    pub name: String,
    /// `admin`, `member` or `viewer` (never `owner`).
    #[schema(value_type = Role)]
    pub role: String,
    /// When the key stops working (RFC 3339, in the future); none: until revoked.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
}

/// A checked [`CreateApiKey`].
pub struct NewApiKey {
    pub name: Name,
    pub role: Role,
    pub expires_at: Option<OffsetDateTime>,
}

impl CreateApiKey {
    pub fn parse(self, now: OffsetDateTime) -> Result<NewApiKey, Vec<FieldError>> {
        let mut errors = Vec::new();
        let name = Name::parse(&self.name)
            .map_err(|e| errors.push(FieldError::new("/name", e.0)))
            .ok();
        let role = match self.role.parse::<Role>() {
            Ok(Role::Owner) => {
                errors.push(FieldError::new("/role", "an API key cannot be an owner"));
                None
            }
            Ok(role) => Some(role),
            Err(_) => {
                let detail = format!(
                    "unknown role {:?}; expected admin, member or viewer",
                    self.role
                );
                errors.push(FieldError::new("/role", detail));
                None
            }
        };
        if self.expires_at.is_some_and(|at| at <= now) {
            errors.push(FieldError::new("/expiresAt", "must be in the future"));
        }
        match (name, role) {
            (Some(name), Some(role)) if errors.is_empty() => Ok(NewApiKey {
                name,
                role,
                expires_at: self.expires_at,
            }),
            _ => Err(errors),
        }
    }
}

/// A key as lists show it: masked, never its secret.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKey {
    pub id: Uuid,
    pub name: String,
    pub role: Role,
    /// The key's first characters, e.g. `hk_Ab3d…`.
    pub masked: String,
    pub created_by: Actor,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// Recorded at most once a minute.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
}

/// The answer to `POST /api/api-keys`: the key itself, this once.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedApiKey {
    #[serde(flatten)]
    pub api_key: ApiKey,
    /// The secret: send it as `Authorization: Bearer <key>`. It is not shown again.
    pub key: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyList {
    /// Live keys (not revoked), newest first; expired ones until revoked.
    pub items: Vec<ApiKey>,
}

#[derive(Debug, sqlx::FromRow)]
pub struct ApiKeyRow {
    pub id: Uuid,
    pub name: String,
    pub role: String,
    pub prefix: String,
    pub created_by: sqlx::types::Json<Actor>,
    pub created_at: OffsetDateTime,
    pub expires_at: Option<OffsetDateTime>,
    pub last_used_at: Option<OffsetDateTime>,
}

impl TryFrom<ApiKeyRow> for ApiKey {
    type Error = StoreError;
    fn try_from(row: ApiKeyRow) -> Result<ApiKey, StoreError> {
        let role = row
            .role
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("api key role {:?}", row.role)))?;
        Ok(ApiKey {
            id: row.id,
            name: row.name,
            role,
            masked: format!("{}…", row.prefix),
            created_by: row.created_by.0,
            created_at: row.created_at,
            expires_at: row.expires_at,
            last_used_at: row.last_used_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_prefixed_random_and_hashed_alike() {
        let (a, b) = (Secret::generate(), Secret::generate());
        assert!(a.expose().starts_with("hk_"));
        assert_eq!(a.expose().len(), 3 + 43, "32 bytes in unpadded base64url");
        assert_ne!(a.expose(), b.expose());
        assert_eq!(a.hash(), Secret::from_bearer(a.expose()).unwrap().hash());
        assert_ne!(a.hash(), b.hash());
        assert_eq!(a.prefix().len(), 7);
        assert!(!format!("{a:?}").contains(&a.expose()[7..]));
        assert!(Secret::from_bearer("eyJhbGciOi.x.y").is_none());
    }

    #[test]
    fn owners_past_expiries_and_unknown_roles_are_refused() {
        let now = OffsetDateTime::now_utc();
        let input = |role: &str, expires_at| CreateApiKey {
            name: "crm".into(),
            role: role.into(),
            expires_at,
        };
        assert!(input("admin", None).parse(now).is_ok());
        let pointers = |r: Result<NewApiKey, Vec<FieldError>>| {
            r.err()
                .unwrap()
                .into_iter()
                .map(|e| e.pointer)
                .collect::<Vec<_>>()
        };
        assert_eq!(pointers(input("owner", None).parse(now)), ["/role"]);
        assert_eq!(pointers(input("root", None).parse(now)), ["/role"]);
        let past = now - time::Duration::minutes(1);
        assert_eq!(
            pointers(input("viewer", Some(past)).parse(now)),
            ["/expiresAt"]
        );
    }
}
