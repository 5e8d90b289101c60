//! `ws-fanout`: how fast a committed change reaches WebSocket subscribers through
//! herald-local (`/ws`, the outbox dispatcher, the `@connections` API).
//!
//! 1. **Latency.** `--clients` (1,000) clients of one tenant connect to `/ws`. The bench then
//!    creates `--events` (100) contacts one after another with `POST /api/contacts`, and for
//!    each measures the time from the POST's response (the commit has happened by then) to
//!    the moment the last client received the `contact_created` frame. Prints p50, p99 and
//!    max.
//! 2. **Throughput.** `--throughput-clients` (100) clients of a second tenant; the bench
//!    imports `--throughput-events` (2,000) contacts in imports of 100 (one transaction and
//!    100 events each) and measures from the first import until every client received every
//!    event. Prints events/s delivered to all clients and posts/s.
//!
//! The database (fresh, `herald_bench_ws_<uuid>`) is dropped at the end. herald writes an
//! EMF line per invocation to stdout; fd 1 points at /dev/null while the server runs and the
//! figures are printed on the original stdout.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use clap::Parser;
use futures_util::StreamExt;
use herald::config::JwtConfig;
use herald_local::server::{self, ServerConfig};
use herald_local::{tenant, token};
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

const SECRET: &str = "herald-bench-secret-not-for-production";

#[derive(Parser, Debug)]
#[command(
    name = "ws-fanout",
    about = "Commit-to-subscriber latency and fan-out throughput"
)]
struct Args {
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    #[arg(long, default_value_t = 100)]
    events: usize,
    #[arg(long, default_value_t = 100)]
    throughput_clients: usize,
    #[arg(long, default_value_t = 2000)]
    throughput_events: usize,
    /// The PostgreSQL server (a database is created there and dropped).
    #[arg(
        long,
        env = "HERALD_BENCH_SERVER_URL",
        default_value = "postgres://postgres@127.0.0.1:5432"
    )]
    server_url: String,
}

/// A client saw event `index` at `at`.
type Seen = (usize, Instant);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(
        args.clients > 0 && args.events > 0,
        "--clients and --events must be positive"
    );
    let _ = rustls::crypto::ring::default_provider().install_default();
    let db_name = format!("herald_bench_ws_{}", Uuid::new_v4().simple());
    let owner_url = format!("{}/{db_name}", args.server_url);
    let stdout = redirect_stdout()?;
    let result = bench(&args, &owner_url).await;
    drop_database(&args.server_url, &db_name).await;
    let mut out = stdout;
    match result {
        Ok(report) => {
            out.write_all(report.as_bytes())?;
            Ok(())
        }
        Err(e) => Err(e),
    }
}

async fn bench(args: &Args, owner_url: &str) -> anyhow::Result<String> {
    let jwt = JwtConfig {
        hs256_secret: Some(SECRET.into()),
        ..JwtConfig::default()
    };
    let running = server::start(ServerConfig::new(owner_url, jwt)).await?;
    let base = format!("http://{}", running.addr);
    let owner = PgPool::connect(owner_url).await?;
    let http = reqwest::Client::new();

    // Latency: one tenant, `clients` subscribers, events one at a time.
    let a = tenant::create(&owner, "Latency", "bench").await?.id;
    eprintln!("connecting {} clients", args.clients);
    let (seen_tx, mut seen) = mpsc::unbounded_channel::<Seen>();
    connect_all(&base, a, args.clients, &seen_tx).await?;
    let token = token::issue(SECRET, "bench", None, 3600)?;
    let mut latencies = Vec::with_capacity(args.events);
    for i in 0..args.events {
        let reply = http
            .post(format!("{base}/api/contacts"))
            .bearer_auth(&token)
            .header("X-Tenant-ID", a.to_string())
            .json(&json!({ "name": format!("bench-{i}"), "phone": format!("+1415555{:04}", i) }))
            .send()
            .await?;
        let committed = Instant::now();
        ensure!(
            reply.status() == 201,
            "POST /api/contacts answered {}",
            reply.status()
        );
        let mut got = 0;
        let mut last = committed;
        while got < args.clients {
            let (index, at) = tokio::time::timeout(Duration::from_secs(30), seen.recv())
                .await
                .context("a client did not receive its event within 30 s")?
                .context("clients gone")?;
            ensure!(index == i, "event {index} arrived while waiting for {i}");
            got += 1;
            last = last.max(at);
        }
        latencies.push(last.saturating_duration_since(committed));
    }
    latencies.sort();
    let pct = |p: f64| {
        latencies[((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1]
    };
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;

    // Throughput: a second tenant, fewer subscribers, events as fast as imports write them.
    let b = tenant::create(&owner, "Throughput", "bench").await?.id;
    let (tp_tx, mut tp_seen) = mpsc::unbounded_channel::<Seen>();
    connect_all(&base, b, args.throughput_clients, &tp_tx).await?;
    let total = args.throughput_events;
    let per_import = 100;
    let started = Instant::now();
    let writer = {
        let http = http.clone();
        let base = base.clone();
        let token = token.clone();
        tokio::spawn(async move {
            let mut i = 0;
            while i < total {
                let n = per_import.min(total - i);
                let rows: Vec<Value> = (i..i + n)
                    .map(|k| json!({ "name": format!("bench-{k}"), "phone": format!("+1212555{:04}", k) }))
                    .collect();
                let reply = http
                    .post(format!("{base}/api/contacts/import"))
                    .bearer_auth(&token)
                    .header("X-Tenant-ID", b.to_string())
                    .json(&rows)
                    .send()
                    .await?;
                ensure!(
                    reply.status().is_success(),
                    "import answered {}",
                    reply.status()
                );
                i += n;
            }
            anyhow::Ok(Instant::now())
        })
    };
    let expected = total * args.throughput_clients;
    let mut got = 0;
    let mut last = started;
    while got < expected {
        let (_, at) = tokio::time::timeout(Duration::from_secs(60), tp_seen.recv())
            .await
            .context("throughput events stopped arriving")?
            .context("clients gone")?;
        got += 1;
        last = last.max(at);
    }
    let written = writer.await??;
    let elapsed = last.saturating_duration_since(started).as_secs_f64();

    Ok(format!(
        "ws-fanout (herald-local in-process, {profile} build)\n\
         latency: {clients} clients of one tenant, {events} events written one at a time (POST /api/contacts)\n\
         \x20 commit (POST response) -> last client: p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms\n\
         throughput: {tc} clients, {total} events in imports of {per_import}\n\
         \x20 writes done after {w:.2} s; every client had every event after {elapsed:.2} s\n\
         \x20 {eps:.0} events/s delivered to all {tc} clients ({pps:.0} frames/s)\n",
        profile = if cfg!(debug_assertions) {
            "dev (unoptimised)"
        } else {
            "release"
        },
        clients = args.clients,
        events = args.events,
        p50 = ms(pct(0.50)),
        p99 = ms(pct(0.99)),
        max = ms(*latencies.last().unwrap()),
        tc = args.throughput_clients,
        w = written.saturating_duration_since(started).as_secs_f64(),
        eps = total as f64 / elapsed,
        pps = expected as f64 / elapsed,
    ))
}

/// Connects `n` clients of `tenant`, 50 handshakes at a time; each reports the index of
/// every `contact_created` it receives (from the payload's name, `bench-{index}`).
async fn connect_all(
    base: &str,
    tenant: uuid::Uuid,
    n: usize,
    seen: &mpsc::UnboundedSender<Seen>,
) -> anyhow::Result<()> {
    let token = token::issue(SECRET, "bench", None, 3600)?;
    let url = format!(
        "{}/ws?token={token}&tenantId={tenant}&language=en",
        base.replacen("http://", "ws://", 1)
    );
    let url = Arc::new(url);
    let mut started = 0;
    while started < n {
        let batch = 50.min(n - started);
        let mut handshakes = Vec::with_capacity(batch);
        for _ in 0..batch {
            let url = Arc::clone(&url);
            handshakes.push(tokio::spawn(async move {
                tokio_tungstenite::connect_async(url.as_str()).await
            }));
        }
        for handshake in handshakes {
            let (mut stream, _) = handshake.await??;
            let seen = seen.clone();
            tokio::spawn(async move {
                while let Some(Ok(frame)) = stream.next().await {
                    let at = Instant::now();
                    if let Message::Text(text) = frame
                        && let Ok(event) = serde_json::from_str::<Value>(text.as_str())
                        && let Some(index) = event["payload"]["name"]
                            .as_str()
                            .and_then(|n| n.strip_prefix("bench-"))
                            .and_then(|n| n.parse().ok())
                    {
                        let _ = seen.send((index, at));
                    }
                }
            });
        }
        started += batch;
    }
    Ok(())
}

/// Points fd 1 at /dev/null and returns a handle on the original stdout.
fn redirect_stdout() -> io::Result<File> {
    io::stdout().flush()?;
    // SAFETY: dup and dup2 on descriptors this process owns; the duplicate becomes a File
    // that owns it.
    let saved = unsafe { libc::dup(1) };
    if saved < 0 {
        return Err(io::Error::last_os_error());
    }
    let saved = unsafe { File::from_raw_fd(saved) };
    let null = OpenOptions::new().write(true).open("/dev/null")?;
    if unsafe { libc::dup2(null.as_raw_fd(), 1) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(saved)
}

async fn drop_database(server_url: &str, db_name: &str) {
    if let Ok(pool) = PgPool::connect(&format!("{server_url}/postgres")).await {
        let sql = format!("DROP DATABASE IF EXISTS \"{db_name}\" WITH (FORCE)");
        let _ = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&pool).await;
    }
}
