//! `herald-local serve`: migrate, build every function's [`App`] once, listen.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use herald::App;
use herald::api::Function;
use herald::auth::Verifier;
use herald::config::JwtConfig;
use herald::db::Database;
use herald::http::egress::EgressPolicy;

use crate::database;
use crate::gateway::{self, Gateway};

#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// The owner's connection (migrations, tenant administration).
    pub database_url: String,
    /// The application role's connection; derived from `database_url` when absent.
    pub app_database_url: Option<String>,
    pub jwt: JwtConfig,
    pub addr: SocketAddr,
    pub slow_query: Duration,
    pub db_max_connections: u32,
    /// Which addresses webhook and provider requests may reach; `herald-local serve` reads
    /// `HERALD_EGRESS_ALLOW`, tests name their loopback fakes.
    pub egress: EgressPolicy,
    /// The webhook deliverer's schedule, lease and pace (tests shorten the schedule).
    pub webhook_delivery: herald::webhooks::delivery::Options,
}

impl ServerConfig {
    pub fn new(database_url: impl Into<String>, jwt: JwtConfig) -> ServerConfig {
        ServerConfig {
            database_url: database_url.into(),
            app_database_url: None,
            jwt,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            slow_query: Duration::from_secs(1),
            db_max_connections: default_pool_size(),
            egress: EgressPolicy::public_only(),
            webhook_delivery: herald::webhooks::delivery::Options::default(),
        }
    }
}

/// PostgreSQL runs on the same machine locally: more connections than it has cores to
/// serve them only adds contention (16 connections on 2 cores measured 25 % slower than 4).
fn default_pool_size() -> u32 {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get() as u32);
    (cores * 2).clamp(4, 16)
}

pub struct Running {
    pub addr: SocketAddr,
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Migrates the database and starts serving; returns once the port is bound.
pub async fn start(config: ServerConfig) -> anyhow::Result<Running> {
    database::migrate(&config.database_url).await?;
    let options = database::app_options(&config.database_url, config.app_database_url.as_deref())?;
    let db = Database::connect_lazy_with(
        options,
        config.db_max_connections,
        config.slow_query,
        "herald-local",
    );
    let verifier = Arc::new(Verifier::new(&config.jwt));
    let apps = Function::ALL.map(|f| {
        Arc::new(
            App::new(f, db.clone(), Arc::clone(&verifier))
                .with_egress_policy(config.egress.clone()),
        )
    });
    // Webhook deliveries run continuously beside the HTTP routes.
    tokio::spawn(herald::webhooks::delivery::worker::run(
        db.clone(),
        herald::http::egress::Egress::new(
            config.egress.clone(),
            herald::http::egress::Timeouts::default(),
        ),
        config.webhook_delivery.clone(),
    ));

    let router = axum::Router::new()
        .fallback(gateway::handle)
        .with_state(Arc::new(Gateway::new(apps)));
    let listener = tokio::net::TcpListener::bind(config.addr).await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    Ok(Running { addr, task })
}
