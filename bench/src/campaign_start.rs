//! `campaign-start`: how long starting a campaign of N contacts (default 1,000,000) takes to
//! materialise its recipients as queued messages, next to one raw `INSERT … SELECT` of the
//! same rows run by psql in the same run (target: at most 2× the raw time).
//!
//! Both write into the same `messages` table with all its indexes: the raw statement for
//! one campaign, the engine (`herald::engine::materialize::step` in bounded batches, each
//! its own transaction as the `herald_app` role under RLS, exactly as the sender runs it)
//! for another. The raw run goes first, so the engine works on the fuller table.

use std::process::Command;
use std::time::Instant;

use anyhow::{Context, ensure};
use clap::Parser;
use herald::engine::materialize::{self, Step};

#[path = "engine_setup.rs"]
mod engine_setup;

#[derive(Parser, Debug)]
#[command(
    name = "campaign-start",
    about = "Campaign start (materialisation) against raw INSERT … SELECT"
)]
struct Args {
    #[arg(long, default_value_t = 1_000_000)]
    contacts: i64,
    /// Contacts per materialisation transaction.
    #[arg(long, default_value_t = 20_000)]
    batch: i64,
    #[arg(
        long,
        env = "HERALD_BENCH_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/herald_bench_start"
    )]
    database_url: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    eprintln!("loading {} contacts…", args.contacts);
    let setup = engine_setup::Setup::new(&args.database_url, args.contacts).await?;

    // Raw: one statement, the same rows (live contacts of the group, with the recipient
    // chosen by the channel), through psql.
    let raw_campaign = setup.running_campaign().await?;
    let sql = format!(
        "INSERT INTO messages (tenant_id, id, campaign_id, contact_id, channel, recipient, status,
                               queued_at, created_at, updated_at)
         SELECT '{t}', gen_random_uuid(), '{c}', c.id, 'sms', c.phone, 'queued', now(), now(), now()
         FROM group_contacts gc JOIN contacts c ON c.tenant_id = gc.tenant_id AND c.id = gc.contact_id
         WHERE gc.tenant_id = '{t}' AND gc.group_id = '{g}'
           AND c.deleted_at IS NULL AND c.opted_out_at IS NULL AND c.phone IS NOT NULL",
        t = setup.tenant,
        c = raw_campaign,
        g = setup.group,
    );
    sqlx::query("CHECKPOINT").execute(&setup.owner).await?;
    eprintln!("raw INSERT … SELECT through psql…");
    let started = Instant::now();
    let out = Command::new("psql")
        .args([
            setup.owner_url.as_str(),
            "-v",
            "ON_ERROR_STOP=1",
            "-qc",
            &sql,
        ])
        .output()
        .context("psql runs")?;
    let raw = started.elapsed();
    ensure!(
        out.status.success(),
        "psql: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The engine: bounded batches as the sender runs them.
    let campaign = setup.running_campaign().await?;
    let db = setup.app_db(2)?;
    sqlx::query("CHECKPOINT").execute(&setup.owner).await?;
    eprintln!("engine materialisation in batches of {}…", args.batch);
    let started = Instant::now();
    let mut steps = 0;
    loop {
        let mut tx = db.begin_service(setup.tenant, "bench").await?;
        let step = materialize::step(&mut tx, campaign, args.batch)
            .await
            .map_err(|e| anyhow::anyhow!("step failed: {}", e.report()))?;
        tx.commit().await?;
        steps += 1;
        if step == Step::Done {
            break;
        }
    }
    let engine = started.elapsed();

    let (queued, recipients): (i64, i32) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM messages WHERE campaign_id = $1), recipients_count
         FROM campaigns WHERE id = $1",
    )
    .bind(campaign)
    .fetch_one(&setup.owner)
    .await?;
    let raw_rows: i64 = sqlx::query_scalar("SELECT count(*) FROM messages WHERE campaign_id = $1")
        .bind(raw_campaign)
        .fetch_one(&setup.owner)
        .await?;
    ensure!(
        queued == args.contacts && raw_rows == args.contacts && recipients as i64 == args.contacts
    );
    setup.drop().await?;

    let ratio = engine.as_secs_f64() / raw.as_secs_f64();
    println!("campaign-start: {} contacts", args.contacts);
    println!(
        "  raw INSERT … SELECT (psql, one statement): {:>8.2} s",
        raw.as_secs_f64()
    );
    println!(
        "  engine materialisation ({steps} transactions of ≤{}): {:>8.2} s  ({:.0} rows/s)",
        args.batch,
        engine.as_secs_f64(),
        args.contacts as f64 / engine.as_secs_f64()
    );
    println!("  ratio engine / raw: {ratio:.2}× (target ≤ 2×)");
    Ok(())
}
