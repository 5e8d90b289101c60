//! Configuration from the environment, read once per container.

use std::sync::Arc;
use std::time::Duration;

use crate::auth::Verifier;
pub use crate::auth::jwt::JwtConfig;
use crate::db::Database;
use crate::net::egress::EgressPolicy;
use crate::observer::Observer;
use crate::secrets::{DatabaseSecret, SecretError};

#[derive(Clone, Debug)]
pub struct Config {
    /// The application role's connection: `DATABASE_URL`, or the URL made from the secret
    /// `DATABASE_SECRET_ARN` names (see [`Config::load`]).
    pub database_url: String,
    /// The secret `database_url` came from, if any: read again (its `refresh`) when the
    /// server refuses the credentials, as after a rotation.
    pub database_secret: Option<Arc<DatabaseSecret>>,
    pub db_max_connections: u32,
    /// What stands between the functions and PostgreSQL (`DATABASE_POOLER`: `none`,
    /// `transaction` for PgBouncer or Supavisor in transaction mode, `rds-proxy`).
    pub db_pooler: crate::db::Pooler,
    pub jwt: JwtConfig,
    /// Statements slower than this are logged as warnings and counted as slow.
    pub slow_query: Duration,
    /// Which addresses webhook and provider requests may reach (`HERALD_EGRESS_ALLOW`).
    pub egress: EgressPolicy,
    /// Rollup flushes and rate limits (`HERALD_STATS_FLUSH_SECS`,
    /// `HERALD_RATE_LIMIT_PER_MINUTE`).
    pub observer: crate::observer::ObserverConfig,
    /// Herald's public base URL (`HERALD_PUBLIC_URL`), for provider status callbacks.
    pub public_url: Option<url::Url>,
    /// Twilio's API root (`HERALD_TWILIO_BASE_URL`, default `https://api.twilio.com`).
    pub twilio_base_url: url::Url,
    /// How long the event history keeps events (`HERALD_EVENT_RETENTION_DAYS`, default 30,
    /// at least 1): the scheduler purges older ones.
    pub event_retention: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0} is not set")]
    Missing(&'static str),
    #[error("{name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
    #[error(transparent)]
    Secret(#[from] SecretError),
}

impl Config {
    /// What a function's `main` reads: [`Config::from_env`], except that without
    /// `DATABASE_URL` the connection comes from the Secrets Manager secret that
    /// `DATABASE_SECRET_ARN` names, read now and kept in [`Config::database_secret`].
    pub async fn load() -> Result<Config, ConfigError> {
        if var("DATABASE_URL").is_some() {
            return Config::from_env();
        }
        let Some(secret) = DatabaseSecret::from_env().await? else {
            return Err(ConfigError::Missing("DATABASE_URL or DATABASE_SECRET_ARN"));
        };
        // The rest first, so that a misconfigured function fails before any network call.
        let mut config = Config::from_env_with(String::new())?;
        config.database_url = secret.url().await?;
        config.database_secret = Some(Arc::new(secret));
        Ok(config)
    }

    /// The configuration with `DATABASE_URL` as the application role's connection.
    pub fn from_env() -> Result<Self, ConfigError> {
        Config::from_env_with(var("DATABASE_URL").ok_or(ConfigError::Missing("DATABASE_URL"))?)
    }

    fn from_env_with(database_url: String) -> Result<Self, ConfigError> {
        let jwt = JwtConfig {
            hs256_secret: var("HERALD_JWT_SECRET"),
            jwks_url: var("HERALD_JWKS_URL"),
            issuer: var("HERALD_JWT_ISSUER"),
            audience: var("HERALD_JWT_AUDIENCE"),
        };
        if jwt.hs256_secret.is_none() && jwt.jwks_url.is_none() {
            return Err(ConfigError::Missing("HERALD_JWT_SECRET or HERALD_JWKS_URL"));
        }
        Ok(Config {
            database_url,
            database_secret: None,
            // One Lambda container serves one request at a time: two connections cover a
            // handler plus a health probe without crowding RDS.
            db_max_connections: parse_var("DB_MAX_CONNECTIONS")?.unwrap_or(2),
            db_pooler: parse_var("DATABASE_POOLER")?.unwrap_or_default(),
            jwt,
            slow_query: Duration::from_millis(parse_var("SLOW_QUERY_MS")?.unwrap_or(1000)),
            egress: EgressPolicy::from_env().map_err(|e| ConfigError::Invalid {
                name: "HERALD_EGRESS_ALLOW",
                reason: e.to_string(),
            })?,
            observer: observer_from_env()?,
            public_url: parse_var("HERALD_PUBLIC_URL")?,
            twilio_base_url: parse_var("HERALD_TWILIO_BASE_URL")?
                .unwrap_or_else(|| crate::providers::TWILIO_API.parse().expect("a valid URL")),
            event_retention: event_retention_from_env()?,
        })
    }
}

/// What a function's `main` builds from the configuration: lazy, so the cold start does no
/// network I/O.
impl Config {
    /// The application role's pool, named `application` in `pg_stat_activity`.
    pub fn database(&self, application: &str) -> Result<Database, sqlx::Error> {
        let options = self.database_url.parse()?;
        Ok(Database::connect_pooled(
            options,
            self.db_pooler,
            self.db_max_connections,
            self.slow_query,
            application,
        )
        .with_secret(self.database_secret.clone())
        .noting_tenants_with(crate::metrics::note_tenant))
    }

    /// This process's rollups and rate limits for `db`.
    pub fn observer(&self, db: &Database) -> Arc<Observer> {
        Observer::new(db.app_pool().clone(), self.observer.clone())
    }

    pub fn verifier(&self) -> Arc<Verifier> {
        Arc::new(Verifier::new(&self.jwt))
    }

    /// A WebSocket function's handler.
    pub fn socket(
        &self,
        route: crate::realtime::socket::Route,
    ) -> Result<crate::realtime::socket::Socket, sqlx::Error> {
        let db = self.database(&format!("herald-{}", route.function()))?;
        let observer = self.observer(&db);
        Ok(
            crate::realtime::socket::Socket::new(route, db, self.verifier())
                .with_observer(observer),
        )
    }

    /// The `dispatcher` function's state: the pool, and the management client for
    /// `HERALD_WS_ENDPOINT` with the execution role's credentials.
    pub async fn dispatcher(
        &self,
    ) -> Result<crate::realtime::dispatcher::Dispatcher, Box<dyn std::error::Error + Send + Sync>>
    {
        use crate::realtime::{WS_ENDPOINT_VAR, dispatcher};
        let endpoint = var(WS_ENDPOINT_VAR).ok_or(ConfigError::Missing(WS_ENDPOINT_VAR))?;
        let db = self.database("herald-dispatcher")?;
        let sdk = crate::aws::from_env().await;
        Ok(dispatcher::Dispatcher::new(
            db,
            crate::realtime::management::Connections::new(&sdk, &endpoint),
            dispatcher::Options::default(),
        ))
    }
}

fn observer_from_env() -> Result<crate::observer::ObserverConfig, ConfigError> {
    let mut observer = crate::observer::ObserverConfig::default();
    if let Some(secs) = parse_var::<u64>("HERALD_STATS_FLUSH_SECS")? {
        observer.flush_every = Duration::from_secs(secs.max(1));
    }
    if let Some(limit) = parse_var::<u32>("HERALD_RATE_LIMIT_PER_MINUTE")? {
        if limit == 0 {
            return Err(ConfigError::Invalid {
                name: "HERALD_RATE_LIMIT_PER_MINUTE",
                reason: "must be at least 1".into(),
            });
        }
        observer.rate_limit_per_minute = limit;
    }
    Ok(observer)
}

fn var(name: &'static str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn parse_var<T: std::str::FromStr>(name: &'static str) -> Result<Option<T>, ConfigError>
where
    T::Err: std::fmt::Display,
{
    var(name)
        .map(|v| {
            v.parse().map_err(|e: T::Err| ConfigError::Invalid {
                name,
                reason: e.to_string(),
            })
        })
        .transpose()
}

fn event_retention_from_env() -> Result<Duration, ConfigError> {
    match parse_var::<u64>("HERALD_EVENT_RETENTION_DAYS")? {
        None => Ok(crate::events::DEFAULT_RETENTION),
        Some(days @ 1..=3650) => Ok(Duration::from_secs(days * 86_400)),
        Some(_) => Err(ConfigError::Invalid {
            name: "HERALD_EVENT_RETENTION_DAYS",
            reason: "must be a number of days from 1 to 3650".into(),
        }),
    }
}
