//! The `ws_connections` table: who is connected, to which tenant, wanting which events.
//!
//! Rows are written under their tenant's context like every tenant table. A connection id
//! alone (all `$disconnect` and `$default` receive) leads to its tenant only through
//! `app.ws_connection_tenant`, a definer function that returns the tenant id and nothing
//! else.

use crate::db::{Conn, TenantTx};
use uuid::Uuid;

use crate::db::Database;
use crate::domain::Locale;
use crate::events::EventType;

/// A connection accepted at `$connect`.
pub struct NewConnection<'a> {
    pub connection_id: &'a str,
    pub tenant: Uuid,
    pub sub: &'a str,
    pub language: Locale,
    /// The outbox position after which the connection wants every event replayed
    /// (`?since=`); the dispatcher is woken at commit to do it.
    pub replay_after: Option<i64>,
}

pub async fn insert(mut conn: Conn<'_>, new: &NewConnection<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO ws_connections (tenant_id, connection_id, sub, language, replay_after)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(new.tenant)
    .bind(new.connection_id)
    .bind(new.sub)
    .bind(new.language.code())
    .bind(new.replay_after)
    .execute(conn.reborrow())
    .await?;
    if new.replay_after.is_some() {
        sqlx::query("SELECT pg_notify('herald_outbox', '')")
            .execute(conn)
            .await?;
    }
    Ok(())
}

/// Opens a transaction in the tenant of `connection_id`; `None` for an unknown connection.
pub async fn begin_for(
    db: &Database,
    connection_id: &str,
) -> Result<Option<TenantTx>, sqlx::Error> {
    let mut tx = db.begin_unscoped().await?;
    let tenant: Option<Uuid> = sqlx::query_scalar("SELECT app.ws_connection_tenant($1)")
        .bind(connection_id)
        .fetch_one(tx.conn())
        .await?;
    match tenant {
        Some(tenant) => Ok(Some(
            crate::db::TenantTx::service(tx, tenant, "websocket").await?,
        )),
        None => {
            tx.commit().await?;
            Ok(None)
        }
    }
}

pub async fn delete(conn: Conn<'_>, connection_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM ws_connections WHERE connection_id = $1")
        .bind(connection_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Prunes connections the gateway no longer knows (410 Gone).
pub async fn delete_all(conn: Conn<'_>, ids: &[String]) -> Result<u64, sqlx::Error> {
    if ids.is_empty() {
        return Ok(0);
    }
    Ok(
        sqlx::query("DELETE FROM ws_connections WHERE connection_id = ANY($1)")
            .bind(ids)
            .execute(conn)
            .await?
            .rows_affected(),
    )
}

pub async fn subscribe(
    conn: Conn<'_>,
    connection_id: &str,
    types: &[EventType],
) -> Result<(), sqlx::Error> {
    let names: Vec<&str> = types.iter().map(|t| t.as_str()).collect();
    sqlx::query("UPDATE ws_connections SET types = $2 WHERE connection_id = $1")
        .bind(connection_id)
        .bind(names)
        .execute(conn)
        .await?;
    Ok(())
}

/// A connection the dispatcher posts to, with the types it wants (`None`: all).
#[derive(sqlx::FromRow)]
pub struct Target {
    pub connection_id: String,
    pub types: Option<Vec<String>>,
}

impl Target {
    pub fn wants(&self, kind: &str) -> bool {
        self.types
            .as_ref()
            .is_none_or(|types| types.iter().any(|t| t == kind))
    }
}

/// Every connection of the transaction's tenant that takes live events: not one whose
/// replay is still to come (it gets the events by replay, in order, then live ones).
pub async fn targets(conn: Conn<'_>) -> Result<Vec<Target>, sqlx::Error> {
    sqlx::query_as(
        "SELECT connection_id, types FROM ws_connections WHERE replay_after IS NULL
         ORDER BY connected_at",
    )
    .fetch_all(conn)
    .await
}

/// A connection waiting for its replay.
#[derive(sqlx::FromRow)]
pub struct Replay {
    pub connection_id: String,
    pub types: Option<Vec<String>>,
    pub replay_after: i64,
    pub connected_at: time::OffsetDateTime,
}

impl Replay {
    pub fn target(&self) -> Target {
        Target {
            connection_id: self.connection_id.clone(),
            types: self.types.clone(),
        }
    }
}

/// The tenant's connections waiting for their replay.
pub async fn replays(conn: Conn<'_>) -> Result<Vec<Replay>, sqlx::Error> {
    sqlx::query_as(
        "SELECT connection_id, types, replay_after, connected_at FROM ws_connections
         WHERE replay_after IS NOT NULL ORDER BY connected_at",
    )
    .fetch_all(conn)
    .await
}

/// The replay of `connection_id` has posted up to `after`; the rest is for the next run.
pub async fn replay_from(
    conn: Conn<'_>,
    connection_id: &str,
    after: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE ws_connections SET replay_after = $2 WHERE connection_id = $1")
        .bind(connection_id)
        .bind(after)
        .execute(conn)
        .await?;
    Ok(())
}

/// The replay of `connection_id` is done: it takes live events from now on.
pub async fn replayed(conn: Conn<'_>, connection_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE ws_connections SET replay_after = NULL WHERE connection_id = $1")
        .bind(connection_id)
        .execute(conn)
        .await?;
    Ok(())
}
