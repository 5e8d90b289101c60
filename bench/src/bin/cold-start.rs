//! `cold-start`: each function binary's init time under a Lambda Runtime API, from process
//! start until it asks for its first event. That is the part of a cold start the binary
//! controls (Lambda adds the sandbox and the download of the package, which no binary
//! changes). The published anchor: Rust on provided.al2023 arm64 initialises in about 14 ms.
//!
//! Builds the release binaries of `functions/*` first, then starts each one `--runs` times
//! against the Runtime API emulator of tests/support, with the environment a deployed
//! function has. Nothing connects at init (the pool is lazy), so no database is needed.
//!
//! cargo run --release -p herald-bench --bin cold-start -- [--runs 20]

use std::time::Duration;

use anyhow::{Context, ensure};
use clap::Parser;
use herald_tests::function_process::{FunctionProcess, function_names, workspace_root};

#[derive(Parser, Debug)]
struct Args {
    /// Starts per function.
    #[arg(long, default_value_t = 20)]
    runs: usize,
    /// Target, in milliseconds, for each function's p50.
    #[arg(long, default_value_t = 30.0)]
    target_ms: f64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let names = function_names();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = std::process::Command::new(cargo);
    build
        .current_dir(workspace_root())
        .args(["build", "--release", "--quiet"]);
    for name in &names {
        build.args(["-p", name]);
    }
    ensure!(build.status()?.success(), "release build of the functions");
    let dir = std::env::var("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| workspace_root().join("target"))
        .join("release");

    let env = [
        (
            "DATABASE_URL",
            "postgres://herald_app@127.0.0.1:5432/herald",
        ),
        // migrate reads the owner's URL at init (it connects only when invoked).
        (
            "OWNER_DATABASE_URL",
            "postgres://postgres@127.0.0.1:5432/herald",
        ),
        ("HERALD_JWT_SECRET", "cold-start-bench-secret-long-enough"),
        ("HERALD_WS_ENDPOINT", "http://127.0.0.1:9/local"),
    ];
    println!(
        "{:<16}  {:>9}  {:>13}  {:>13}  {:>9}  target p50 <= {} ms",
        "function", "size (MB)", "init p50 (ms)", "init p90 (ms)", "max (ms)", args.target_ms
    );
    for name in &names {
        let binary = dir.join(name);
        let size = std::fs::metadata(&binary)
            .with_context(|| format!("{}", binary.display()))?
            .len() as f64
            / 1e6;
        let mut times = Vec::with_capacity(args.runs);
        for _ in 0..args.runs {
            let process = FunctionProcess::start(&binary, name, &env).await;
            let polled = process
                .api
                .first_poll(Duration::from_secs(10))
                .await
                .with_context(|| format!("{name} never polled: {}", process.stderr()))?;
            times.push(polled.duration_since(process.spawned).as_secs_f64() * 1e3);
        }
        times.sort_by(f64::total_cmp);
        let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
        println!(
            "{name:<16}  {size:>9.2}  {:>13.2}  {:>13.2}  {:>9.2}  {}",
            at(0.5),
            at(0.9),
            times[times.len() - 1],
            if at(0.5) <= args.target_ms {
                "met"
            } else {
                "MISSED"
            }
        );
    }
    Ok(())
}
