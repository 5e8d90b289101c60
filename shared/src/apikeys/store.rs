//! The `api_keys` table, in the caller's tenant. Finding a key by its hash across tenants is
//! `app.enter_api_key`'s (see [`crate::db::Database::begin_api_key`]).

use uuid::Uuid;

use super::{ApiKey, ApiKeyRow, MAX_LIVE_KEYS, NewApiKey, Secret};
use crate::db::{StoreError, TenantTx};

const COLUMNS: &str = "id, name, role, prefix, created_by, created_at, expires_at, last_used_at";

/// Stores a new key for `secret`, made by the transaction's actor.
pub async fn insert(
    tx: &mut TenantTx,
    new: &NewApiKey,
    secret: &Secret,
) -> Result<ApiKey, StoreError> {
    // The tenant's keys are locked first: two requests cannot both slip under the cap.
    let live: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT 1 FROM api_keys WHERE revoked_at IS NULL FOR UPDATE) k",
    )
    .fetch_one(tx.conn())
    .await?;
    if live >= MAX_LIVE_KEYS {
        return Err(StoreError::conflict(format!(
            "a tenant holds at most {MAX_LIVE_KEYS} live API keys; revoke one first"
        )));
    }
    let created_by = sqlx::types::Json(tx.actor().clone());
    let row: ApiKeyRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO api_keys (tenant_id, id, name, role, prefix, hash, created_by, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {COLUMNS}"
    )))
    .bind(tx.tenant())
    .bind(Uuid::now_v7())
    .bind(new.name.as_str())
    .bind(new.role.as_str())
    .bind(secret.prefix())
    .bind(&secret.hash()[..])
    .bind(created_by)
    .bind(new.expires_at)
    .fetch_one(tx.conn())
    .await?;
    row.try_into()
}

/// The tenant's live keys, newest first.
pub async fn list(tx: &mut TenantTx) -> Result<Vec<ApiKey>, StoreError> {
    let rows: Vec<ApiKeyRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM api_keys WHERE revoked_at IS NULL ORDER BY id DESC"
    )))
    .fetch_all(tx.conn())
    .await?;
    rows.into_iter().map(ApiKey::try_from).collect()
}

/// Revokes key `id`: the next request with it is refused. 404 for no such live key.
pub async fn revoke(tx: &mut TenantTx, id: Uuid) -> Result<(), StoreError> {
    let revoked =
        sqlx::query("UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL")
            .bind(id)
            .execute(tx.conn())
            .await?
            .rows_affected();
    if revoked == 0 {
        return Err(StoreError::not_found("API key"));
    }
    Ok(())
}
