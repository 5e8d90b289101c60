//! The keys' table: claiming a key, reading what it holds, and purging old keys (which the
//! scheduler does).

use std::time::Duration;

use crate::db::{Database, TenantTx};

/// A key's row as a claim finds it.
#[derive(sqlx::FromRow)]
pub struct StoredKey {
    pub fingerprint: Vec<u8>,
    /// Its holder's lease has not ended.
    pub held: bool,
    pub committed: bool,
    pub status: Option<i16>,
    pub headers: Option<sqlx::types::Json<Vec<(String, String)>>>,
    pub body: Option<Vec<u8>>,
}

/// Takes `key` for a request, leased for `lease`, when it is unused (or older than a day,
/// which the purge has not reached yet); answers whether it did. Locks the row either way.
pub async fn insert_fresh(
    tx: &mut TenantTx,
    key: &str,
    fingerprint: &[u8],
    lease: Duration,
) -> Result<bool, sqlx::Error> {
    let tenant = tx.tenant();
    let fresh: Option<bool> = sqlx::query_scalar(
        "INSERT INTO idempotency_keys (tenant_id, key, fingerprint, locked_until) \
         VALUES ($1, $2, $3, now() + make_interval(secs => $4)) \
         ON CONFLICT (tenant_id, key) DO UPDATE \
            SET fingerprint = EXCLUDED.fingerprint, locked_until = EXCLUDED.locked_until, \
                committed_at = NULL, status = NULL, headers = NULL, body = NULL, \
                created_at = now() \
          WHERE idempotency_keys.created_at < now() - interval '24 hours' \
         RETURNING true",
    )
    .bind(tenant)
    .bind(key)
    .bind(fingerprint)
    .bind(lease.as_secs_f64())
    .fetch_optional(tx.conn())
    .await?;
    Ok(fresh.is_some())
}

pub async fn stored(tx: &mut TenantTx, key: &str) -> Result<StoredKey, sqlx::Error> {
    let tenant = tx.tenant();
    sqlx::query_as(
        "SELECT fingerprint, locked_until > now() AS held, committed_at IS NOT NULL AS committed, \
                status, headers, body \
         FROM idempotency_keys WHERE tenant_id = $1 AND key = $2",
    )
    .bind(tenant)
    .bind(key)
    .fetch_one(tx.conn())
    .await
}

/// Leases `key` to this request: its holder's lease ended and it committed nothing.
pub async fn take_over(tx: &mut TenantTx, key: &str, lease: Duration) -> Result<(), sqlx::Error> {
    let tenant = tx.tenant();
    sqlx::query(
        "UPDATE idempotency_keys SET locked_until = now() + make_interval(secs => $3) \
         WHERE tenant_id = $1 AND key = $2",
    )
    .bind(tenant)
    .bind(key)
    .bind(lease.as_secs_f64())
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Keys past their 24 hours deleted per purge (the scheduler runs one a minute): far more
/// than a busy minute creates, and a bounded statement.
pub const PURGE_BATCH: i32 = 10_000;

/// Deletes up to [`PURGE_BATCH`] keys older than 24 hours, across tenants; answers how many.
pub async fn purge(db: &Database) -> Result<i32, sqlx::Error> {
    let mut tx = db.begin_unscoped().await?;
    let purged = sqlx::query_scalar("SELECT app.purge_idempotency_keys($1)")
        .bind(PURGE_BATCH)
        .fetch_one(tx.conn())
        .await?;
    tx.commit().await?;
    Ok(purged)
}
