//! Preparing a database for Herald: create it if missing, migrate it as the owner, and
//! derive the application role's connection.

use std::str::FromStr;

use sqlx::migrate::MigrateDatabase;
use sqlx::postgres::PgConnectOptions;
use sqlx::{PgPool, Postgres};

/// The role the functions connect as (created by the first migration).
pub const APP_ROLE: &str = "herald_app";

/// Creates the database if it does not exist and applies every pending migration.
pub async fn migrate(owner_url: &str) -> anyhow::Result<()> {
    if !Postgres::database_exists(owner_url).await? {
        Postgres::create_database(owner_url).await?;
    }
    let pool = owner_pool(owner_url).await?;
    herald::db::MIGRATOR.run(&pool).await?;
    pool.close().await;
    Ok(())
}

/// A small pool as the owner, for migrations and tenant administration.
pub async fn owner_pool(owner_url: &str) -> anyhow::Result<PgPool> {
    Ok(sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(owner_url)
        .await?)
}

/// The application role's connection options: the owner's server and database, as
/// `herald_app`, unless `app_url` names another.
pub fn app_options(owner_url: &str, app_url: Option<&str>) -> anyhow::Result<PgConnectOptions> {
    Ok(match app_url {
        Some(url) => PgConnectOptions::from_str(url)?,
        None => PgConnectOptions::from_str(owner_url)?.username(APP_ROLE),
    })
}
