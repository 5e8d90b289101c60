//! `auth-cost`: what authenticating a request costs with an API key, against a JWT whose
//! verification is cached (the same token again) and one that is not (a new token each
//! request), in one run.
//!
//! Two measurements. In process: `Verifier::verify` (HS256) cached and uncached, and
//! `Secret::hash` (an API key's HMAC), each called `--calls` times. End to end: `GET
//! /api/contacts?limit=1` through herald-local from one sequential client, the three modes
//! interleaved for `--rounds` rounds of `--requests` each. An API key is found by its hash
//! in the same round trip that enters the tenant (`app.enter_api_key` instead of
//! `app.enter_tenant`), so the target is that a key costs no more than an uncached JWT.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use clap::Parser;
use herald::apikeys::Secret;
use herald::auth::Verifier;
use herald::config::JwtConfig;
use herald_local::server::{self, ServerConfig};
use herald_local::{database, tenant, token};
use serde_json::json;

#[path = "scratch_db.rs"]
mod scratch_db;
#[path = "stdout.rs"]
mod stdout;
use scratch_db::drop_database;
use stdout::redirect_stdout;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SECRET: &str = "herald-bench-secret-not-for-production";
const OWNER_SUB: &str = "bench-owner";

#[derive(Parser, Debug)]
#[command(
    name = "auth-cost",
    about = "API-key authentication against JWT, cached and not"
)]
struct Args {
    /// In-process calls of each kind.
    #[arg(long, default_value_t = 20_000)]
    calls: usize,
    /// Requests of each mode per round.
    #[arg(long, default_value_t = 1_000)]
    requests: usize,
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    #[arg(
        long,
        env = "HERALD_BENCH_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/herald_bench_auth"
    )]
    database_url: String,
    /// Where the server's stdout (log and EMF lines) goes.
    #[arg(long, default_value = "/dev/null")]
    server_log: PathBuf,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let mut out = match redirect_stdout(&args.server_log) {
        Ok(out) => out,
        Err(e) => {
            eprintln!("auth-cost: cannot redirect stdout: {e}");
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
        if let Err(e) = drop_database(&args.database_url).await {
            eprintln!("auth-cost: dropping the database: {e:#}");
        }
        result
    });
    runtime.shutdown_background();
    match result {
        Ok(report) => {
            let _ = out.write_all(report.as_bytes());
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("auth-cost: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: &Args) -> anyhow::Result<String> {
    ensure!(args.calls > 0 && args.requests > 0 && args.rounds > 0);
    let jwt = JwtConfig {
        hs256_secret: Some(SECRET.to_owned()),
        ..JwtConfig::default()
    };
    let mut report = in_process(args, &jwt).await?;
    report += &end_to_end(args, jwt).await?;
    Ok(report)
}

/// Per-call CPU of each way to authenticate, without the database.
async fn in_process(args: &Args, jwt: &JwtConfig) -> anyhow::Result<String> {
    let tokens = fresh_tokens(args.calls)?;
    let verifier = Verifier::new(jwt);
    let started = Instant::now();
    for _ in 0..args.calls {
        verifier.verify(&tokens[0]).await?;
    }
    let cached = started.elapsed() / args.calls as u32;
    let verifier = Verifier::new(jwt);
    let started = Instant::now();
    for token in &tokens {
        verifier.verify(token).await?;
    }
    let uncached = started.elapsed() / args.calls as u32;
    let key = Secret::generate();
    let started = Instant::now();
    for _ in 0..args.calls {
        std::hint::black_box(key.hash());
    }
    let hashed = started.elapsed() / args.calls as u32;
    Ok(format!(
        "auth-cost: in process, {} calls each: JWT (HS256) cached {:.2} µs, uncached {:.2} µs; \
         API key hash (HMAC-SHA-256) {:.2} µs\n",
        args.calls,
        micros(cached),
        micros(uncached),
        micros(hashed)
    ))
}

/// Distinct tokens for one member (each expires a second later than the one before).
fn fresh_tokens(n: usize) -> anyhow::Result<Vec<String>> {
    (0..n)
        .map(|i| token::issue(SECRET, OWNER_SUB, None, 3600 + i as u64))
        .collect()
}

/// One mode of authenticating HTTP requests.
#[derive(Clone, Copy)]
enum Mode {
    JwtCached,
    JwtUncached,
    ApiKey,
}

impl Mode {
    const ALL: [Mode; 3] = [Mode::JwtCached, Mode::JwtUncached, Mode::ApiKey];

    fn name(self) -> &'static str {
        match self {
            Mode::JwtCached => "JWT, cached",
            Mode::JwtUncached => "JWT, uncached",
            Mode::ApiKey => "API key",
        }
    }
}

async fn end_to_end(args: &Args, jwt: JwtConfig) -> anyhow::Result<String> {
    drop_database(&args.database_url).await?;
    let mut config = ServerConfig::new(args.database_url.clone(), jwt);
    config.run_sender = false;
    config.scheduler_every = None;
    config.observer.rate_limit_per_minute = u32::MAX;
    let running = server::start(config).await.context("server")?;
    let owner = database::owner_pool(&args.database_url).await?;
    let tenant = tenant::create(&owner, "Bench tenant", OWNER_SUB).await?.id;
    let base = format!("http://{}", running.addr);
    let client = reqwest::Client::new();
    let tokens = fresh_tokens(args.requests * args.rounds + 1)?;
    let created: serde_json::Value = client
        .post(format!("{base}/api/api-keys"))
        .bearer_auth(&tokens[0])
        .header("X-Tenant-ID", tenant.to_string())
        .json(&json!({ "name": "bench", "role": "viewer" }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let key = created["key"].as_str().context("the key")?.to_owned();
    let url = format!("{base}/api/contacts?limit=1");
    let mut samples: [Vec<Duration>; 3] = Default::default();
    let mut fresh = tokens[1..].iter();
    for _ in 0..args.rounds {
        for (i, mode) in Mode::ALL.into_iter().enumerate() {
            for _ in 0..args.requests {
                let request = match mode {
                    Mode::JwtCached => client.get(&url).bearer_auth(&tokens[0]),
                    Mode::JwtUncached => client.get(&url).bearer_auth(fresh.next().unwrap()),
                    Mode::ApiKey => client.get(&url).bearer_auth(&key),
                };
                let request = match mode {
                    Mode::ApiKey => request,
                    _ => request.header("X-Tenant-ID", tenant.to_string()),
                };
                let started = Instant::now();
                let status = request.send().await?.status();
                samples[i].push(started.elapsed());
                ensure!(status == 200, "{}: {status}", mode.name());
            }
        }
    }
    Ok(summary(args, &mut samples))
}

fn summary(args: &Args, samples: &mut [Vec<Duration>; 3]) -> String {
    let mut report = format!(
        "auth-cost: GET /api/contacts?limit=1, one sequential client, {} rounds x {} requests a mode\n",
        args.rounds, args.requests
    );
    let mut p50 = [0.0; 3];
    for (i, mode) in Mode::ALL.into_iter().enumerate() {
        let s = &mut samples[i];
        s.sort();
        p50[i] = micros(s[s.len() / 2]);
        let mean = micros(s.iter().sum::<Duration>() / s.len() as u32);
        report += &format!(
            "  {:<14} p50 {:>7.1} µs  mean {:>7.1} µs  p99 {:>7.1} µs\n",
            mode.name(),
            p50[i],
            mean,
            micros(s[s.len() * 99 / 100])
        );
    }
    let (cached, uncached, key) = (p50[0], p50[1], p50[2]);
    report += &format!(
        "API key vs JWT cached: {:+.1} µs p50; vs JWT uncached: {:+.1} µs p50 (target: no more than uncached): {}\n",
        key - cached,
        key - uncached,
        if key <= uncached * 1.05 {
            "PASS"
        } else {
            "FAIL"
        }
    );
    report
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
