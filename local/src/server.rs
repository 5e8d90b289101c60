//! `herald-local serve`: migrate, build every function's [`App`] once, listen.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use herald::App;
use herald::auth::Verifier;
use herald::config::JwtConfig;
use herald::db::Database;
use herald::net::egress::EgressPolicy;
use herald::observer::ObserverConfig;

use crate::database;
use crate::gateway::{self, Gateway};
use crate::websocket::{self, WsGateway};
use herald::realtime::dispatcher::{self, Dispatcher};
use herald::realtime::management::Connections;
use herald::realtime::socket::{Route, Socket};

#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// The owner's connection (migrations, tenant administration).
    pub database_url: String,
    /// The application role's connection; derived from `database_url` when absent.
    pub app_database_url: Option<String>,
    /// What stands between `app_database_url` and PostgreSQL. `LISTEN` always connects
    /// straight to `database_url`'s server as the application role.
    pub db_pooler: herald::db::Pooler,
    pub jwt: JwtConfig,
    /// The clock tokens' times are judged by: the system's; tests move an adjustable one.
    pub jwt_clock: herald::auth::Clock,
    pub addr: SocketAddr,
    pub slow_query: Duration,
    pub db_max_connections: u32,
    /// Which addresses webhook and provider requests may reach; `herald-local serve` reads
    /// `HERALD_EGRESS_ALLOW`, tests name their loopback fakes.
    pub egress: EgressPolicy,
    /// The dispatcher's batch size, concurrency and (for tests) fault injection.
    pub dispatcher: dispatcher::Options,
    /// Rollup flush interval, default rate limit, metrics on or off.
    pub observer: ObserverConfig,
    /// Tenants without a delivery provider send through `log`.
    pub default_log_provider: bool,
    /// Run the sender beside the port (tests that run their own sender turn it off).
    pub run_sender: bool,
    /// Run the scheduler beside the port, polling this often; `None`: not at all.
    pub scheduler_every: Option<Duration>,
    /// The sender's safety-net poll between notifications.
    pub sender_poll: Duration,
    pub tuning: herald::engine::Tuning,
    /// Twilio's API root (tests point it at a fake on loopback).
    pub twilio_base_url: herald::providers::Url,
    /// The webhook deliverer's schedule, lease and pace (tests shorten the schedule).
    pub webhook_delivery: herald::webhooks::delivery::Options,
    /// How long a request holds its `Idempotency-Key` (fault tests shorten it).
    pub idempotency_lease: Duration,
    /// How long the event history keeps events (`HERALD_EVENT_RETENTION_DAYS`).
    pub event_retention: Duration,
}

impl ServerConfig {
    pub fn new(database_url: impl Into<String>, jwt: JwtConfig) -> ServerConfig {
        ServerConfig {
            database_url: database_url.into(),
            app_database_url: None,
            db_pooler: herald::db::Pooler::None,
            jwt,
            jwt_clock: herald::auth::Clock::system(),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            slow_query: Duration::from_secs(1),
            db_max_connections: default_pool_size(),
            egress: EgressPolicy::public_only(),
            dispatcher: dispatcher::Options::default(),
            observer: ObserverConfig::default(),
            default_log_provider: true,
            run_sender: true,
            scheduler_every: Some(Duration::from_secs(5)),
            sender_poll: Duration::from_secs(1),
            tuning: herald::engine::Tuning::default(),
            twilio_base_url: herald::providers::TWILIO_API.parse().expect("a valid URL"),
            webhook_delivery: herald::webhooks::delivery::Options::default(),
            idempotency_lease: herald::idempotency::LEASE,
            event_retention: herald::events::DEFAULT_RETENTION,
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
    pub db: Database,
    /// The functions' rollups, to flush at shutdown.
    pub observer: Arc<herald::observer::Observer>,
}

/// Migrates the database and starts serving; returns once the port is bound.
pub async fn start(config: ServerConfig) -> anyhow::Result<Running> {
    database::migrate(&config.database_url).await?;
    let options = database::app_options(&config.database_url, config.app_database_url.as_deref())?;
    let direct = database::app_options(&config.database_url, None)?;
    let db = Database::connect_pooled(
        options,
        config.db_pooler,
        config.db_max_connections,
        config.slow_query,
        "herald-local",
    )
    .with_listen_options(direct.clone().application_name("herald-local"))
    .noting_tenants_with(herald::metrics::note_tenant);
    let observer = herald::observer::Observer::new(db.app_pool().clone(), config.observer.clone());
    // Idle servers flush their rollups too, not only after requests.
    observer.spawn_ticker();
    let verifier = Arc::new(Verifier::with_clock(&config.jwt, config.jwt_clock.clone()));
    let listener = tokio::net::TcpListener::bind(config.addr).await?;
    let addr = listener.local_addr()?;
    // Twilio signs its callbacks over the URL it calls: this server's.
    let public_url: herald::providers::Url = format!("http://{}/", local_endpoint(addr)).parse()?;
    // Every function, and `trpc` (the seed's procedures over all of them).
    let endpoints = herald::api::ENDPOINTS.iter().copied();
    let apps = endpoints
        .chain([herald::api::trpc::endpoint()])
        .map(|endpoint| {
            Arc::new(
                App::new(endpoint, db.clone(), Arc::clone(&verifier))
                    .with_observer(Arc::clone(&observer))
                    .with_default_log_provider(config.default_log_provider)
                    .with_public_url(Some(public_url.clone()))
                    .with_egress_policy(config.egress.clone())
                    .with_idempotency_lease(config.idempotency_lease),
            )
        });
    if config.run_sender {
        let outbound = herald::providers::Outbound::new(
            config.egress.clone(),
            config.twilio_base_url.clone(),
            Some(public_url.clone()),
        );
        let sender = herald::engine::sender::Sender::new(
            db.clone(),
            outbound,
            config.tuning.clone(),
            config.default_log_provider,
        );
        tokio::spawn(crate::engine::run_sender(
            db.clone(),
            Arc::new(sender),
            config.sender_poll,
        ));
    }
    if let Some(every) = config.scheduler_every {
        tokio::spawn(crate::engine::run_scheduler(
            db.clone(),
            every,
            config.event_retention,
        ));
    }
    // Webhook deliveries run continuously beside the HTTP routes.
    tokio::spawn(herald::webhooks::delivery::worker::run(
        db.clone(),
        herald::net::egress::Egress::new(
            config.egress.clone(),
            herald::net::egress::Timeouts::default(),
        ),
        config.webhook_delivery.clone(),
    ));

    let router = axum::Router::new()
        .fallback(gateway::handle)
        .with_state(Arc::new(Gateway::new(apps)))
        .merge(websocket::router(Arc::new(WsGateway::new(
            Socket::new(Route::Connect, db.clone(), Arc::clone(&verifier))
                .with_observer(Arc::clone(&observer)),
            Socket::new(Route::Disconnect, db.clone(), Arc::clone(&verifier))
                .with_observer(Arc::clone(&observer)),
            Socket::new(Route::Default, db.clone(), Arc::clone(&verifier))
                .with_observer(Arc::clone(&observer)),
        ))));
    // The dispatcher posts to this very server's `@connections` API (HERALD_WS_ENDPOINT in
    // AWS), with dummy credentials: the local gateway checks no signature.
    let endpoint = format!("http://{}", local_endpoint(addr));
    let connections = Connections::new(&herald::aws::local(), &endpoint);
    crate::dispatch::spawn(
        direct,
        Dispatcher::new(db.clone(), connections, config.dispatcher.clone()),
    );
    // No Nagle: small responses (every `@connections` post) must not wait on delayed ACKs.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let task = tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    Ok(Running {
        addr,
        task,
        db,
        observer,
    })
}

/// Where this server can reach itself: a wildcard bind answers on loopback.
fn local_endpoint(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        ip if ip.is_unspecified() => SocketAddr::from(([127, 0, 0, 1], addr.port())),
        _ => addr,
    }
}
