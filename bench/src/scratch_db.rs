//! The benches' scratch databases.

use anyhow::Context;
use sqlx::{Connection, PgConnection};

/// `DROP DATABASE … WITH (FORCE)`: the servers' pools and listeners still run and would
/// reconnect between sqlx's terminating them and dropping the database.
pub async fn drop_database(url: &str) -> anyhow::Result<()> {
    let (server, name) = url.rsplit_once('/').context("a database name in the URL")?;
    let name = name.split('?').next().unwrap_or(name);
    let mut conn = PgConnection::connect(&format!("{server}/postgres")).await?;
    let sql = format!(
        "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
        name.replace('"', "\"\"")
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .execute(&mut conn)
        .await?;
    Ok(())
}
