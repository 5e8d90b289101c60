//! Migrating a deployed database: what `herald-local migrate` does on a laptop, for RDS.
//!
//! Runs as the owner (the role that owns the schema), never as the application role. The
//! first migration creates `herald_app` without a password, which is all a local trust setup
//! needs; in AWS the functions log in with the password of their own secret, so this sets
//! it from that secret's URL, keeping the two in step on every run (a rotated secret, then
//! one invocation of the migrate function).

use std::str::FromStr;

use serde::Serialize;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::db::MIGRATOR;

/// What a run did.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// Versions applied by this run (empty when the schema was current).
    pub applied: Vec<i64>,
    /// The newest version now applied.
    pub current: Option<i64>,
    /// Whether `herald_app`'s password was set from the application URL.
    pub app_password_set: bool,
}

/// Applies pending migrations over `owner_url`; then, when `app_url` carries a password
/// for `herald_app`, sets that password.
pub async fn run(owner_url: &str, app_url: Option<&str>) -> Result<Report, sqlx::Error> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(PgConnectOptions::from_str(owner_url)?)
        .await?;
    let before = applied_versions(&pool).await?;
    MIGRATOR.run(&pool).await?;
    let after = applied_versions(&pool).await?;
    let applied = after
        .iter()
        .copied()
        .filter(|v| !before.contains(v))
        .collect();

    let mut app_password_set = false;
    if let Some(password) = app_url.and_then(app_password) {
        // ALTER ROLE takes no bind parameters: quote the literal in the server with %L.
        let statement: String =
            sqlx::query_scalar("SELECT format('ALTER ROLE herald_app PASSWORD %L', $1::text)")
                .bind(password)
                .fetch_one(&pool)
                .await?;
        sqlx::query(sqlx::AssertSqlSafe(statement))
            .execute(&pool)
            .await?;
        app_password_set = true;
    }
    pool.close().await;
    Ok(Report {
        applied,
        current: after.last().copied(),
        app_password_set,
    })
}

async fn applied_versions(pool: &sqlx::PgPool) -> Result<Vec<i64>, sqlx::Error> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(pool)
        .await?;
    if !exists {
        return Ok(Vec::new());
    }
    sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
        .fetch_all(pool)
        .await
}

/// The password of an application URL that logs in as `herald_app`.
fn app_password(url: &str) -> Option<String> {
    let options = PgConnectOptions::from_str(url).ok()?;
    if options.get_username() != "herald_app" {
        return None;
    }
    let parsed = url::Url::parse(url).ok()?;
    let password = parsed.password()?;
    let decoded = percent_encoding::percent_decode_str(password)
        .decode_utf8()
        .ok()?
        .into_owned();
    (!decoded.is_empty()).then_some(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_application_password_only_for_herald_app() {
        assert_eq!(
            app_password("postgres://herald_app:s%40cr%2Bt@db:5432/herald").as_deref(),
            Some("s@cr+t")
        );
        assert_eq!(app_password("postgres://other:pw@db/herald"), None);
        assert_eq!(app_password("postgres://herald_app@db/herald"), None);
    }
}
