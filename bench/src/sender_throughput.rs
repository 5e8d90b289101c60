//! `sender-throughput`: messages per second from queued to `sent` through the `http`
//! provider into a local sink (rate limit off), beside the sink's own maximum measured with
//! wrk (`scripts/install-wrk` installs it). Target: at least 2,000 messages/s.
//!
//! The sink is a minimal HTTP server on 127.0.0.1 answering 202 `{"id": …}`. The campaign is
//! materialised first (not timed); the timed part is `Sender::run_once` until every message
//! is recorded sent: claims, rendering, signed provider calls, recording, counters.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use clap::Parser;
use herald::engine::Tuning;
use herald::engine::materialize::{self, Step};
use herald::engine::sender::Sender;
use herald::providers::Outbound;

#[path = "engine_setup.rs"]
mod engine_setup;

#[derive(Parser, Debug)]
#[command(
    name = "sender-throughput",
    about = "Sender throughput to a local sink, beside wrk's figure for the sink"
)]
struct Args {
    #[arg(long, default_value_t = 50_000)]
    messages: i64,
    #[arg(long, default_value_t = 500)]
    claim_batch: i64,
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Batches in flight at once (Tuning::pipelines).
    #[arg(long, default_value_t = herald::engine::Tuning::default().pipelines)]
    pipelines: usize,
    /// Database connections of the sender.
    #[arg(long, default_value_t = 4)]
    connections: u32,
    #[arg(long, default_value_t = 10)]
    wrk_seconds: u64,
    #[arg(
        long,
        env = "HERALD_BENCH_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/herald_bench_sender"
    )]
    database_url: String,
}

async fn sink() -> anyhow::Result<String> {
    let router = axum::Router::new().fallback(|| async {
        (
            axum::http::StatusCode::ACCEPTED,
            [("content-type", "application/json")],
            r#"{"id":"sink"}"#,
        )
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/send", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok(url)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let url = sink().await?;

    // The sink's maximum: wrk POSTing a message-sized JSON body.
    let script = std::env::temp_dir().join("herald-sink.lua");
    std::fs::write(
        &script,
        "wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\n\
         wrk.body = '{\"id\":\"0192f0c0-0000-7000-8000-000000000000\",\"to\":\"+15550000001\",\"body\":\"Hi Name 1, 1!\"}'\n",
    )?;
    eprintln!("wrk against the sink for {} s…", args.wrk_seconds);
    let wrk = Command::new("wrk")
        .args(["-t2", "-c64", &format!("-d{}s", args.wrk_seconds), "-s"])
        .arg(&script)
        .arg(&url)
        .output()
        .context("wrk runs (scripts/install-wrk installs it)")?;
    let wrk_out = String::from_utf8_lossy(&wrk.stdout).into_owned();
    let sink_rps = wrk_out
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .map(|v| v.trim().to_owned())
        .unwrap_or_else(|| "?".into());

    eprintln!("loading {} contacts…", args.messages);
    let setup = engine_setup::Setup::new(&args.database_url, args.messages).await?;
    let mut tx = setup.owner.begin().await?;
    sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
        .bind(setup.tenant.to_string())
        .execute(&mut *tx)
        .await?;
    sqlx::query("INSERT INTO providers (tenant_id, kind, url, secret) VALUES ($1, 'http', $2, $3)")
        .bind(setup.tenant)
        .bind(&url)
        .bind("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    let campaign = setup.running_campaign().await?;
    let db = setup.app_db(args.connections)?;
    loop {
        let mut tx = db.begin_service(setup.tenant, "bench").await?;
        let step = materialize::step(&mut tx, campaign, 50_000)
            .await
            .map_err(|e| anyhow::anyhow!(e.report()))?;
        tx.commit().await?;
        if step == Step::Done {
            break;
        }
    }

    let outbound = Outbound::new(
        herald::net::egress::EgressPolicy::parse("127.0.0.0/8")?,
        "http://127.0.0.1:9/".parse()?,
        None,
    );
    let tuning = Tuning {
        claim_batch: args.claim_batch,
        concurrency: args.concurrency,
        pipelines: args.pipelines,
        ..Tuning::default()
    };
    let sender = Sender::new(db, outbound, tuning, false);
    eprintln!("sending…");
    let started = Instant::now();
    let report = sender
        .run_once(Duration::from_secs(600))
        .await
        .map_err(|e| anyhow::anyhow!(e.report()))?;
    let elapsed = started.elapsed();
    let (sent, status): (i32, String) =
        sqlx::query_as("SELECT sent_count, status FROM campaigns WHERE id = $1")
            .bind(campaign)
            .fetch_one(&setup.owner)
            .await?;
    ensure!(
        sent as i64 == args.messages && status == "completed",
        "sent {sent}, {status}, {report:?}"
    );
    setup.drop().await?;

    println!(
        "sender-throughput: {} messages, http provider, rate limit off",
        args.messages
    );
    println!(
        "  sender: {:.2} s → {:.0} messages/s (claim batch {}, concurrency {}, {} pipelines, {} connections)",
        elapsed.as_secs_f64(),
        args.messages as f64 / elapsed.as_secs_f64(),
        args.claim_batch,
        args.concurrency,
        args.pipelines,
        args.connections
    );
    println!("  sink alone (wrk -t2 -c64): {sink_rps} requests/s");
    Ok(())
}
