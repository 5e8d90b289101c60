//! `herald-local`: run the bundle, migrate, create tenants, issue development tokens.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, Subcommand};
use herald::config::JwtConfig;
use herald_local::server::{self, ServerConfig};
use herald_local::{DEV_JWT_SECRET, database, postgres, tenant, token};

/// A long-running server that allocates per request: mimalloc measured 13 % more requests/s
/// than glibc's malloc in `contacts-list` (bench/README.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "herald-local",
    version,
    about = "Every Herald function behind one local port"
)]
struct Cli {
    /// The owner's PostgreSQL connection; the database is created if missing. Default:
    /// postgres@127.0.0.1:5432/herald if it answers, else a PostgreSQL of herald-local's own.
    #[arg(long, env = "DATABASE_URL", global = true)]
    database_url: Option<String>,
    /// HS256 secret tokens are signed and checked with.
    #[arg(long, env = "HERALD_JWT_SECRET", default_value = DEV_JWT_SECRET, hide_default_value = true, global = true)]
    jwt_secret: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Migrate, then serve every function on one port.
    Serve {
        #[arg(long, default_value_t = 3000)]
        port: u16,
        #[arg(long, default_value = "127.0.0.1")]
        host: std::net::IpAddr,
        /// The application role's connection (default: DATABASE_URL as `herald_app`).
        #[arg(long, env = "HERALD_APP_DATABASE_URL")]
        app_database_url: Option<String>,
        /// What stands between the application role's connection and PostgreSQL: none,
        /// transaction (PgBouncer or Supavisor in transaction mode) or rds-proxy.
        #[arg(long, env = "DATABASE_POOLER", default_value = "none")]
        db_pooler: herald::db::Pooler,
        #[arg(long, env = "SLOW_QUERY_MS", default_value_t = 1000)]
        slow_query_ms: u64,
        /// Default requests per minute per tenant.
        #[arg(long, env = "HERALD_RATE_LIMIT_PER_MINUTE", default_value_t = herald::observer::DEFAULT_RATE_LIMIT_PER_MINUTE)]
        rate_limit_per_minute: u32,
        /// Seconds between performance-rollup flushes.
        #[arg(long, env = "HERALD_STATS_FLUSH_SECS", default_value_t = 10)]
        stats_flush_secs: u64,
        /// Seconds a keyed request whose process died before committing blocks its retries.
        #[arg(long, env = "HERALD_IDEMPOTENCY_LEASE_SECS", default_value_t = herald::idempotency::LEASE.as_secs())]
        idempotency_lease_secs: u64,
        /// Days the event history (`GET /api/events`) keeps events.
        #[arg(long, env = "HERALD_EVENT_RETENTION_DAYS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3650))]
        event_retention_days: u64,
    },
    /// Create the database if needed and apply every migration.
    Migrate,
    /// Tenant administration.
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// Print a token the local gateway accepts.
    Token {
        #[arg(long)]
        sub: String,
        #[arg(long)]
        tenant: Option<uuid::Uuid>,
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
    },
}

#[derive(Subcommand)]
enum TenantCommand {
    /// Create a tenant owned by --owner; prints it as JSON.
    Create {
        #[arg(long)]
        name: String,
        #[arg(long)]
        owner: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            port,
            host,
            app_database_url,
            db_pooler,
            slow_query_ms,
            rate_limit_per_minute,
            stats_flush_secs,
            idempotency_lease_secs,
            event_retention_days,
        } => {
            herald::telemetry::init();
            let jwt = JwtConfig {
                hs256_secret: Some(cli.jwt_secret),
                jwks_url: std::env::var("HERALD_JWKS_URL").ok(),
                issuer: std::env::var("HERALD_JWT_ISSUER").ok(),
                audience: std::env::var("HERALD_JWT_AUDIENCE").ok(),
            };
            let observer = herald::observer::ObserverConfig {
                rate_limit_per_minute: rate_limit_per_minute.max(1),
                flush_every: Duration::from_secs(stats_flush_secs.max(1)),
                ..Default::default()
            };
            let config = ServerConfig {
                observer,
                app_database_url,
                db_pooler,
                egress: herald::net::egress::EgressPolicy::from_env()?,
                addr: SocketAddr::new(host, port),
                slow_query: Duration::from_millis(slow_query_ms),
                idempotency_lease: Duration::from_secs(idempotency_lease_secs.max(1)),
                event_retention: Duration::from_secs(event_retention_days * 86_400),
                ..ServerConfig::new(postgres::database_url(cli.database_url).await?, jwt)
            };
            let running = server::start(config).await?;
            eprintln!("herald-local listening on http://{}", running.addr);
            let observer = std::sync::Arc::clone(&running.observer);
            tokio::select! {
                result = running.task => result??,
                _ = tokio::signal::ctrl_c() => {}
            }
            // Rollups still in memory.
            observer.flush().await;
        }
        Command::Migrate => {
            database::migrate(&postgres::database_url(cli.database_url).await?).await?;
            eprintln!("migrated");
        }
        Command::Tenant {
            command: TenantCommand::Create { name, owner },
        } => {
            let database_url = postgres::database_url(cli.database_url).await?;
            database::migrate(&database_url).await?;
            let pool = database::owner_pool(&database_url).await?;
            let created = tenant::create(&pool, &name, &owner).await?;
            println!("{}", serde_json::to_string(&created)?);
        }
        Command::Token { sub, tenant, ttl } => {
            println!("{}", token::issue(&cli.jwt_secret, &sub, tenant, ttl)?);
        }
    }
    Ok(())
}
