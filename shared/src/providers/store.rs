//! Provider SQL, inside the tenant's own transaction.

use super::config::ProviderConfig;
use super::input::NewProvider;
use crate::db::StoreError;
use crate::db::TenantTx;

macro_rules! columns {
    () => {
        "tenant_id, kind, url, account_sid, sender, secret, messages_per_second,
         max_consecutive_failures"
    };
}

pub async fn get(tx: &mut TenantTx) -> Result<Option<ProviderConfig>, sqlx::Error> {
    let tenant = tx.tenant();
    sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        " FROM providers WHERE tenant_id = $1"
    ))
    .bind(tenant)
    .fetch_optional(tx.conn())
    .await
}

/// Sets the tenant's provider, replacing any previous one.
pub async fn put(tx: &mut TenantTx, new: &NewProvider) -> Result<ProviderConfig, StoreError> {
    let tenant = tx.tenant();
    Ok(sqlx::query_as(concat!(
        "INSERT INTO providers (tenant_id, kind, url, account_sid, sender, secret,
                                messages_per_second, max_consecutive_failures)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (tenant_id) DO UPDATE SET
            kind = EXCLUDED.kind, url = EXCLUDED.url, account_sid = EXCLUDED.account_sid,
            sender = EXCLUDED.sender, secret = EXCLUDED.secret,
            messages_per_second = EXCLUDED.messages_per_second,
            max_consecutive_failures = EXCLUDED.max_consecutive_failures,
            updated_at = now()
         RETURNING ",
        columns!()
    ))
    .bind(tenant)
    .bind(new.kind.as_str())
    .bind(new.url.as_ref().map(|u| u.as_str()))
    .bind(new.account_sid.as_deref())
    .bind(new.from.as_deref())
    .bind(new.secret.as_ref().map(|s| s.expose()))
    .bind(new.messages_per_second)
    .bind(new.max_consecutive_failures)
    .fetch_one(tx.conn())
    .await?)
}
