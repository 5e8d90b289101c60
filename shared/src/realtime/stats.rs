//! `GET /api/ws/stats`: the caller's tenant's open connections, by user and by language.

use crate::db::Conn;
use serde::Serialize;

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WsStats {
    /// Open connections of the tenant.
    pub connections: i64,
    /// Per user (`sub`), most connections first.
    pub by_user: Vec<UserConnections>,
    /// Per language the clients asked for.
    pub by_language: Vec<LanguageConnections>,
}

#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct UserConnections {
    pub sub: String,
    pub connections: i64,
}

#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct LanguageConnections {
    pub language: String,
    pub connections: i64,
}

/// The transaction's tenant's connections (row-level security scopes every query).
pub async fn stats(mut conn: Conn<'_>) -> Result<WsStats, sqlx::Error> {
    let by_user: Vec<UserConnections> = sqlx::query_as(
        "SELECT sub, count(*) AS connections FROM ws_connections
         GROUP BY sub ORDER BY connections DESC, sub",
    )
    .fetch_all(conn.reborrow())
    .await?;
    let by_language: Vec<LanguageConnections> = sqlx::query_as(
        "SELECT language, count(*) AS connections FROM ws_connections
         GROUP BY language ORDER BY connections DESC, language",
    )
    .fetch_all(conn.reborrow())
    .await?;
    Ok(WsStats {
        connections: by_user.iter().map(|u| u.connections).sum(),
        by_user,
        by_language,
    })
}
