//! `pooler`: `GET /api/contacts?limit=50` requests/s with the application role connecting
//! straight to PostgreSQL with named (cached) statements, straight with unnamed statements,
//! and through PgBouncer in transaction mode (unnamed, as Herald must there), in one run.
//!
//! Three in-process herald-local servers on one fresh database (20,000 contacts imported
//! through the API), loaded in turn by wrk in alternating rounds so that the machine's drift
//! spreads over all three. PgBouncer gets as many server connections as the servers' pools,
//! so the comparison is the extra hop and the extra parse, not a smaller pool.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, ensure};
use clap::Parser;
use herald::db::Pooler;
use herald_tests::pgbouncer::PgBouncer;
use herald_tests::{TestApp, pooled_url};

#[path = "stdout.rs"]
mod stdout;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "pooler",
    about = "Contacts list: direct vs PgBouncer, named vs unnamed"
)]
struct Args {
    /// Seconds of each measured wrk run.
    #[arg(long, default_value_t = 8)]
    seconds: u64,
    /// Rounds; each runs every variant once.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Pool size of each server, and PgBouncer's server connections.
    #[arg(long, default_value_t = 8)]
    pool: u32,
    /// Where the servers' log lines go.
    #[arg(long, default_value = "/dev/null")]
    server_log: PathBuf,
}

struct Variant {
    name: &'static str,
    app: TestApp,
    rates: Vec<f64>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let mut out = match stdout::redirect_stdout(&args.server_log) {
        Ok(out) => out,
        Err(e) => {
            eprintln!("pooler: cannot redirect stdout: {e}");
            return ExitCode::FAILURE;
        }
    };
    match run(&args).await {
        Ok(report) => {
            use std::io::Write;
            let _ = write!(out, "{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("pooler: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: &Args) -> anyhow::Result<String> {
    let bouncer = PgBouncer::start(args.pool, 5432);
    let tune = |c: &mut herald_local::server::ServerConfig| {
        c.db_max_connections = args.pool;
        c.observer.rate_limit_per_minute = 10_000_000;
    };
    let direct = TestApp::spawn_config(|c| {
        tune(c);
        c.app_database_url = None;
        c.db_pooler = Pooler::None;
    })
    .await;
    let unnamed = direct
        .second_server(|c| {
            tune(c);
            c.app_database_url = None;
            c.db_pooler = Pooler::Transaction;
        })
        .await;
    let pooled = direct
        .second_server(|c| {
            tune(c);
            c.app_database_url = Some(pooled_url(&bouncer.url(), &direct.db_name));
            c.db_pooler = Pooler::Transaction;
        })
        .await;
    let tenant = direct.tenant("bench-owner").await;
    import_contacts(&direct, tenant, 20_000).await?;
    let token = herald_tests::token("bench-owner", None, 3600);

    let mut variants = [
        Variant {
            name: "direct, named statements",
            app: direct,
            rates: Vec::new(),
        },
        Variant {
            name: "direct, unnamed statements",
            app: unnamed,
            rates: Vec::new(),
        },
        Variant {
            name: "PgBouncer (transaction), unnamed",
            app: pooled,
            rates: Vec::new(),
        },
    ];
    for variant in &variants {
        wrk(args, &variant.app.base, &token, tenant, 2).await?;
    }
    for round in 0..args.rounds {
        for variant in &mut variants {
            let rate = wrk(args, &variant.app.base, &token, tenant, args.seconds).await?;
            eprintln!(
                "pooler: round {} {}: {rate:.0} req/s",
                round + 1,
                variant.name
            );
            variant.rates.push(rate);
        }
    }
    Ok(report(args, &variants))
}

/// `count` contacts through `POST /api/contacts/import`, 10,000 a request.
async fn import_contacts(app: &TestApp, tenant: uuid::Uuid, count: usize) -> anyhow::Result<()> {
    let user = app.user("bench-owner", tenant);
    for chunk in 0..count.div_ceil(10_000) {
        let rows: Vec<serde_json::Value> = (0..10_000.min(count - chunk * 10_000))
            .map(|i| {
                let n = chunk * 10_000 + i;
                serde_json::json!({ "name": format!("Contact {n}"), "phone": format!("+1415{n:07}") })
            })
            .collect();
        let reply = user
            .post("/api/contacts/import", &serde_json::Value::from(rows))
            .await;
        ensure!(
            reply.status == 200,
            "import answered {}: {}",
            reply.status,
            reply.json
        );
    }
    Ok(())
}

/// One wrk run against the first page; its requests a second. Fails on any non-2xx answer.
async fn wrk(
    args: &Args,
    base: &str,
    token: &str,
    tenant: uuid::Uuid,
    seconds: u64,
) -> anyhow::Result<f64> {
    let out = tokio::process::Command::new("wrk")
        .arg("-t2")
        .arg(format!("-c{}", args.concurrency))
        .arg(format!("-d{seconds}s"))
        .arg("-H")
        .arg(format!("Authorization: Bearer {token}"))
        .arg("-H")
        .arg(format!("X-Tenant-ID: {tenant}"))
        .arg(format!("{base}/api/contacts?limit=50"))
        .kill_on_drop(true)
        .output()
        .await
        .context("running wrk (scripts/install-wrk)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    ensure!(out.status.success(), "wrk failed: {text}");
    ensure!(!text.contains("Non-2xx"), "wrk saw errors: {text}");
    text.lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("no Requests/sec in wrk's output: {text}"))
}

fn report(args: &Args, variants: &[Variant]) -> String {
    let mean = |v: &Variant| v.rates.iter().sum::<f64>() / v.rates.len().max(1) as f64;
    let base = mean(&variants[0]);
    let mut text = format!(
        "pooler: GET /api/contacts?limit=50, 20,000 contacts, concurrency {}, pool {}, {} rounds of {} s\n",
        args.concurrency, args.pool, args.rounds, args.seconds
    );
    for v in variants {
        let rounds: Vec<String> = v.rates.iter().map(|r| format!("{r:.0}")).collect();
        text += &format!(
            "  {:<34} {:>7.0} req/s ({})  {:.2}x of direct named\n",
            v.name,
            mean(v),
            rounds.join(", "),
            mean(v) / base
        );
    }
    text
}
