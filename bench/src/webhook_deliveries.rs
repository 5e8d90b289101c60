//! `webhook-deliveries`: how many webhook deliveries per second Herald's deliverer makes to a
//! local receiver, next to what that receiver itself can take (measured with `wrk`).
//!
//! One run: a fresh database; a receiver (axum on 127.0.0.1, answering `200 ok`); `wrk`
//! POSTing an event-sized body at it for `--seconds` (its maximum); one webhook and
//! `--deliveries` events queued by the outbox trigger in one statement; then
//! `herald::webhooks::delivery::run_once` rounds at `--concurrency` until nothing is due,
//! timed. Every delivery is signed, sent through the SSRF guard, logged in `webhook_logs`
//! and announced with a `webhook_triggered` event, exactly as in production. The figures
//! go to stdout, progress to stderr; the database is dropped at the end.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use clap::Parser;
use herald::db::Database;
use herald::net::egress::{Egress, EgressPolicy, Timeouts};
use herald::webhooks::delivery::{self, Options};
use herald_local::{database, tenant};
use sqlx::migrate::MigrateDatabase;
use sqlx::{PgPool, Postgres};
use uuid::Uuid;

#[derive(Parser, Debug)]
#[command(
    name = "webhook-deliveries",
    about = "Benchmark webhook deliveries per second to a local receiver, beside wrk's maximum"
)]
struct Args {
    /// Events queued for delivery.
    #[arg(long, default_value_t = 20_000)]
    deliveries: i32,
    /// Attempts in flight at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Deliveries claimed per round.
    #[arg(long, default_value_t = 64)]
    batch: i64,
    /// Batches in flight at once.
    #[arg(long, default_value_t = Options::default().lanes)]
    lanes: usize,
    /// Length of the wrk run against the receiver.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// The server's pool size.
    #[arg(long, default_value_t = 16)]
    db_max_connections: u32,
    /// The owner's connection; this database is dropped, recreated and dropped again.
    #[arg(
        long,
        env = "HERALD_BENCH_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/herald_bench_webhooks"
    )]
    database_url: String,
}

/// A body the size of a typical contact event.
const BODY: &str = r#"{"id":"0193a0b0-0000-7000-8000-000000000000","type":"contact_created","tenantId":"0193a0b0-0000-7000-8000-000000000001","timestamp":"2026-11-25T20:00:00Z","payload":{"id":"0193a0b0-0000-7000-8000-000000000002","name":"Contact 1","phone":"+14155550101","email":null,"attributes":{"n":1}}}"#;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _ = Postgres::drop_database(&args.database_url).await;
    database::migrate(&args.database_url).await?;
    let result = run(&args).await;
    let _ = Postgres::drop_database(&args.database_url).await;
    result
}

async fn run(args: &Args) -> anyhow::Result<()> {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&hits);
    let router = axum::Router::new().fallback(move || {
        counter.fetch_add(1, Ordering::Relaxed);
        async { "ok" }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, router).await });

    eprintln!("wrk against the receiver for {} s ...", args.seconds);
    let receiver_max = wrk(&url, args.concurrency, args.seconds)?;
    hits.store(0, Ordering::Relaxed);

    let owner = database::owner_pool(&args.database_url).await?;
    let tenant = tenant::create(&owner, "Bench", "bench-owner").await?.id;
    let webhook = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO webhooks (tenant_id, id, url, event_types, secret)
         VALUES ($1, $2, $3, '{contact_created}', 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw')",
    )
    .bind(tenant)
    .bind(webhook)
    .bind(&url)
    .execute(&owner)
    .await?;
    queue(&owner, tenant, args.deliveries).await?;
    eprintln!("{} deliveries queued; delivering ...", args.deliveries);

    let db = Database::connect_lazy_with(
        database::app_options(&args.database_url, None)?,
        args.db_max_connections,
        Duration::from_secs(1),
        "herald-bench",
    );
    let egress = Egress::new(EgressPolicy::parse("127.0.0.0/8")?, Timeouts::default());
    let options = Options {
        concurrency: args.concurrency,
        batch: args.batch,
        lanes: args.lanes,
        ..Options::default()
    };
    let started = Instant::now();
    let mut attempted = 0;
    loop {
        let round = delivery::run_once(&db, &egress, &options).await?;
        if round.attempted == 0 {
            break;
        }
        attempted += round.attempted;
    }
    let elapsed = started.elapsed();

    let succeeded: i64 =
        sqlx::query_scalar("SELECT count(*) FROM webhook_deliveries WHERE status = 'succeeded'")
            .fetch_one(&owner)
            .await?;
    let logs: i64 = sqlx::query_scalar("SELECT count(*) FROM webhook_logs")
        .fetch_one(&owner)
        .await?;
    ensure!(
        succeeded == i64::from(args.deliveries) && logs == succeeded,
        "{succeeded} succeeded, {logs} logged of {}",
        args.deliveries
    );
    owner.close().await;

    let rate = attempted as f64 / elapsed.as_secs_f64();
    println!("webhook-deliveries");
    println!("  deliveries            {}", args.deliveries);
    println!("  concurrency           {}", args.concurrency);
    println!("  batch per lane        {}", args.batch);
    println!("  lanes                 {}", args.lanes);
    println!("  receiver hits         {}", hits.load(Ordering::Relaxed));
    println!("  elapsed               {:.2} s", elapsed.as_secs_f64());
    println!("  deliveries/s          {rate:.0}   (target: at least 1,500/s)");
    println!(
        "  receiver max (wrk)    {receiver_max:.0} requests/s   (wrk -t2 -c{} -d{}s, POST)",
        args.concurrency, args.seconds
    );
    Ok(())
}

/// Queues `n` contact events in one statement; the outbox trigger fans them out.
async fn queue(owner: &PgPool, tenant: Uuid, n: i32) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO outbox_events (tenant_id, id, type, payload)
         SELECT $1, gen_random_uuid(), 'contact_created',
                jsonb_build_object('id', gen_random_uuid(), 'name', 'Contact ' || i,
                                   'phone', '+1415555' || lpad(i::text, 4, '0'),
                                   'attributes', jsonb_build_object('n', i))
         FROM generate_series(1, $2) AS i",
    )
    .bind(tenant)
    .bind(n)
    .execute(owner)
    .await?;
    Ok(())
}

/// `wrk`'s requests/s POSTing [`BODY`] to `url`.
fn wrk(url: &str, connections: usize, seconds: u64) -> anyhow::Result<f64> {
    let script = std::env::temp_dir().join(format!("herald-wrk-{}.lua", std::process::id()));
    std::fs::write(
        &script,
        format!(
            "wrk.method = \"POST\"\nwrk.body = [[{BODY}]]\nwrk.headers[\"Content-Type\"] = \"application/json\"\n"
        ),
    )?;
    let output = Command::new("wrk")
        .args([
            "-t2",
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            "-s",
        ])
        .arg(&script)
        .arg(url)
        .output()
        .context("running wrk (apt-get install wrk)")?;
    let _ = std::fs::remove_file(&script);
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("no Requests/sec in wrk's output: {text}"))
}
