//! `mixed-load`: 20,000 mixed requests (reads, writes, imports, campaign starts) at
//! concurrency 64 over two tenants against herald-local, started in-process on a fresh
//! database with the sender running. Prints throughput and p50/p99 overall and per class,
//! and fails if any answer was a 5xx or held a row of the other tenant. The load itself is
//! `herald_tests::load`, which CI runs at a tenth of the size (tests/tests/load.rs).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use herald_tests::{TestApp, load};

#[path = "stdout.rs"]
mod stdout;

/// The allocator `herald-local serve` runs with (local/src/main.rs).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "mixed-load",
    about = "Mixed requests over two tenants against herald-local"
)]
struct Args {
    /// Load steps (a campaign start is two requests: create, start).
    #[arg(long, default_value_t = 20_000)]
    requests: usize,
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// The server's pool size.
    #[arg(long, default_value_t = 8)]
    pool: u32,
    /// Where the server's log lines go while it runs.
    #[arg(long, default_value = "/dev/null")]
    server_log: PathBuf,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let mut out = match stdout::redirect_stdout(&args.server_log) {
        Ok(out) => out,
        Err(e) => {
            eprintln!("mixed-load: cannot redirect stdout: {e}");
            return ExitCode::FAILURE;
        }
    };
    // TEST_DATABASE_URL names the PostgreSQL server, as for the tests.
    let app = TestApp::spawn_config(|c| {
        c.run_sender = true;
        c.db_max_connections = args.pool;
        // Two tenants sending thousands of requests a second would spend the default limit
        // (6,000 a minute each) in seconds; the bench measures the server, not the limiter.
        c.observer.rate_limit_per_minute = 10_000_000;
    })
    .await;
    let tenants = load::two_tenants(&app).await;
    eprintln!(
        "mixed-load: {} steps at concurrency {}…",
        args.requests, args.concurrency
    );
    let report = load::run(
        &app.http,
        std::slice::from_ref(&app.base),
        tenants,
        args.requests,
        args.concurrency,
    )
    .await;
    use std::io::Write;
    let _ = writeln!(
        out,
        "mixed-load: {} steps, concurrency {}, pool {}\n{}",
        args.requests,
        args.concurrency,
        args.pool,
        report.summary()
    );
    for line in report
        .server_errors
        .iter()
        .chain(&report.cross_tenant)
        .take(20)
    {
        let _ = writeln!(out, "  {line}");
    }
    if report.server_errors.is_empty()
        && report.cross_tenant.is_empty()
        && report.transport_errors.is_empty()
    {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
