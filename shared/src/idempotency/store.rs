//! The keys' table work that needs no request: purging old keys, which the scheduler does.

use crate::db::Database;

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
