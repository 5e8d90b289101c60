//! `observability-cost`: what EMF lines, per-minute rollups and rate limiting cost
//! `GET /api/contacts?limit=50`, measured both ways in one run.
//!
//! One database, two herald-local servers started in-process on it: `on` with Herald's
//! observability as deployed (an EMF line per request, the rollup collector with its
//! flushes, the rate limiter with its syncs), `off` with all three disabled. Both share
//! everything else: the process-wide JSON log subscriber and its query-counting layer, the
//! invocation span. Measured phases alternate off, on, on, off… so that drifting load on
//! the machine hits both ways alike; the summary compares mean latency and throughput.
//! Progress goes to stderr; server stdout (log and EMF lines) goes to `--server-log`.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use clap::Parser;
use herald::config::JwtConfig;
use herald::observer::ObserverConfig;
use herald_local::server::{self, ServerConfig};
use herald_local::{database, tenant, token};
use sqlx::Postgres;
use sqlx::migrate::MigrateDatabase;

#[path = "stdout.rs"]
mod stdout;
use stdout::redirect_stdout;

const SECRET: &str = "herald-bench-secret-not-for-production";
const OWNER_SUB: &str = "bench-owner";

#[derive(Parser, Debug)]
#[command(
    name = "observability-cost",
    about = "GET /api/contacts?limit=50 with Herald's metrics, rollups and rate limits on and off"
)]
struct Args {
    /// Length of each measured phase.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Phases per way (alternating off, on, on, off, …).
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Contacts loaded for the tenant.
    #[arg(long, default_value_t = 10_000)]
    contacts: i32,
    /// Concurrent closed-loop clients.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    #[arg(
        long,
        env = "HERALD_BENCH_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/herald_bench_observability"
    )]
    database_url: String,
    /// Where the servers' stdout goes.
    #[arg(long, default_value = "/dev/null")]
    server_log: PathBuf,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let mut out = match redirect_stdout(&args.server_log) {
        Ok(out) => out,
        Err(e) => {
            eprintln!("observability-cost: cannot redirect stdout: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let result = runtime.block_on(async {
        let result = run(&args).await;
        let _ = Postgres::force_drop_database(&args.database_url).await;
        result
    });
    runtime.shutdown_background();
    match result {
        Ok(report) => {
            let _ = out.write_all(report.as_bytes());
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("observability-cost: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[derive(Default)]
struct Phase {
    latencies: Vec<Duration>,
    errors: u64,
    wall: Duration,
}

impl Phase {
    fn add(&mut self, other: Phase) {
        self.latencies.extend(other.latencies);
        self.errors += other.errors;
        self.wall += other.wall;
    }

    fn summary(&mut self) -> (f64, f64, f64, f64) {
        self.latencies.sort();
        let n = self.latencies.len().max(1);
        let mean = self.latencies.iter().sum::<Duration>().as_secs_f64() * 1000.0 / n as f64;
        let pct = |p: f64| {
            let rank = ((p * n as f64).ceil() as usize).clamp(1, n) - 1;
            self.latencies
                .get(rank)
                .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
        };
        let rps = self.latencies.len() as f64 / self.wall.as_secs_f64().max(1e-9);
        (rps, mean, pct(0.5), pct(0.99))
    }
}

async fn run(args: &Args) -> anyhow::Result<String> {
    ensure!(args.seconds > 0 && args.rounds > 0 && args.concurrency > 0);
    Postgres::force_drop_database(&args.database_url).await?;
    Postgres::create_database(&args.database_url).await?;
    herald::telemetry::init();
    let jwt = JwtConfig {
        hs256_secret: Some(SECRET.to_owned()),
        ..JwtConfig::default()
    };
    let start = |enabled: bool| {
        let mut config = ServerConfig::new(args.database_url.clone(), jwt.clone());
        config.observer = ObserverConfig {
            enabled,
            rate_limit_per_minute: u32::MAX,
            ..ObserverConfig::default()
        };
        server::start(config)
    };
    let off = start(false).await.context("server off")?;
    let on = start(true).await.context("server on")?;

    let owner = database::owner_pool(&args.database_url).await?;
    let bench = tenant::create(&owner, "Bench tenant", OWNER_SUB).await?;
    eprintln!("observability-cost: loading {} contacts", args.contacts);
    load_contacts(&owner, bench.id, args.contacts).await?;
    sqlx::query("VACUUM (ANALYZE) contacts")
        .execute(&owner)
        .await?;

    let token = token::issue(SECRET, OWNER_SUB, None, 3600)?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()?;
    let url = |addr: std::net::SocketAddr| format!("http://{addr}/api/contacts?limit=50");
    let target = |addr| Arc::new((url(addr), token.clone(), bench.id.to_string()));
    let (t_off, t_on) = (target(off.addr), target(on.addr));

    // Warm both: pools connected, plans cached.
    for t in [&t_off, &t_on] {
        phase(&client, t, args.concurrency, Duration::from_secs(1)).await;
    }
    let (mut total_off, mut total_on) = (Phase::default(), Phase::default());
    for round in 1..=args.rounds {
        // ABBA order: off/on in odd rounds, on/off in even ones, so that neither way always
        // runs right after the other.
        let mut ways = [
            ("off", &t_off, &mut total_off),
            ("on", &t_on, &mut total_on),
        ];
        if round % 2 == 0 {
            ways.reverse();
        }
        for (name, t, total) in ways {
            let p = phase(
                &client,
                t,
                args.concurrency,
                Duration::from_secs(args.seconds),
            )
            .await;
            eprintln!(
                "observability-cost: round {round} {name}: {} requests, {} errors",
                p.latencies.len(),
                p.errors
            );
            total.add(p);
        }
    }
    on.observer.flush().await;
    let rolled: i64 = sqlx::query_scalar(
        "SELECT coalesce(sum(requests), 0)::bigint FROM perf_minutes WHERE route = 'GET /api/contacts'",
    )
    .fetch_one(&owner)
    .await?;

    let (rps_off, mean_off, p50_off, p99_off) = total_off.summary();
    let (rps_on, mean_on, p50_on, p99_on) = total_on.summary();
    let cost = 100.0 * (mean_on - mean_off) / mean_off;
    let mut report = format!(
        "observability-cost ({} contacts, concurrency {}, {} x {} s per way, alternating)\n",
        args.contacts, args.concurrency, args.rounds, args.seconds
    );
    report += &format!(
        "off: {rps_off:.0} req/s, mean {mean_off:.3} ms, p50 {p50_off:.3} ms, p99 {p99_off:.3} ms, {} errors\n",
        total_off.errors
    );
    report += &format!(
        "on:  {rps_on:.0} req/s, mean {mean_on:.3} ms, p50 {p50_on:.3} ms, p99 {p99_on:.3} ms, {} errors\n",
        total_on.errors
    );
    report += &format!(
        "cost of EMF + rollups + rate limits: {cost:+.1} % of mean latency (target <= 10 %), throughput {:+.1} %\n",
        100.0 * (rps_on - rps_off) / rps_off
    );
    report += &format!(
        "rollups written by `on`: {rolled} requests of GET /api/contacts (measured {} + warm-up)\n",
        total_on.latencies.len()
    );
    Ok(report)
}

/// Contacts for the tenant, ids UUIDv7 one millisecond apart (newest-first order).
async fn load_contacts(pool: &sqlx::PgPool, tenant: uuid::Uuid, count: i32) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
        .bind(tenant.to_string())
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO contacts (tenant_id, id, name, phone, created_at, updated_at)
         SELECT $1,
                (lpad(to_hex((extract(epoch from now()) * 1000)::bigint - $2 + i), 12, '0')
                 || '7' || substr(h, 1, 3) || '8' || substr(h, 4, 15))::uuid,
                'Contact ' || i, '+1415' || lpad(i::text, 7, '0'), now(), now()
         FROM generate_series(1, $2::int) AS i, LATERAL (SELECT md5($1::text || i)) AS m(h)
         ON CONFLICT DO NOTHING",
    )
    .bind(tenant)
    .bind(count)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

async fn phase(
    client: &reqwest::Client,
    target: &Arc<(String, String, String)>,
    concurrency: usize,
    length: Duration,
) -> Phase {
    let started = Instant::now();
    let end = started + length;
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let client = client.clone();
            let target = Arc::clone(target);
            tokio::spawn(async move {
                let mut out = Phase::default();
                while Instant::now() < end {
                    let t0 = Instant::now();
                    let ok = client
                        .get(&target.0)
                        .bearer_auth(&target.1)
                        .header("X-Tenant-ID", &target.2)
                        .send()
                        .await
                        .is_ok_and(|r| r.status() == 200);
                    if ok {
                        out.latencies.push(t0.elapsed());
                    } else {
                        out.errors += 1;
                    }
                }
                out
            })
        })
        .collect();
    let mut total = Phase::default();
    for w in workers {
        if let Ok(p) = w.await {
            total.add(p);
        }
    }
    total.wall = started.elapsed();
    total
}
