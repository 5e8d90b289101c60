//! `first-page`: `GET /api/contacts?limit=50` right after a new tenant imports 100,000
//! contacts (10 imports of 10,000 through `POST /api/contacts/import`), against the same
//! page once the table has been analysed (target: within 1.5×), in one run.
//!
//! Twice, each on a fresh database with autovacuum off for it (so that nothing analyses
//! the table behind the bench's back): once with `app.analyze_if_unseen` replaced by a
//! function that does nothing (the problem: what the planner does with rows it has never
//! seen), once as migrated. Each time: the imports, the first page measured for
//! `--seconds` at once, `ANALYZE contacts`, the page measured again. Progress goes to
//! stderr; server stdout (log and EMF lines) goes to `--server-log`.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use clap::Parser;
use herald::config::JwtConfig;
use herald::contacts::store::{ListQuery, push_page};
use herald::domain::Limit;
use herald_local::server::{self, ServerConfig};
use herald_local::{database, tenant, token};
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection, PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

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
    name = "first-page",
    about = "The first contacts page right after a large import, against after ANALYZE"
)]
struct Args {
    /// Imports into the new tenant.
    #[arg(long, default_value_t = 10)]
    imports: usize,
    /// Contacts per import (the route takes at most 10,000).
    #[arg(long, default_value_t = 10_000)]
    rows: usize,
    /// Length of each measured phase.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Concurrent closed-loop clients.
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// The database with the analysis; the one without gets `_unanalysed` appended.
    #[arg(
        long,
        env = "HERALD_BENCH_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/herald_bench_first_page"
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
            eprintln!("first-page: cannot redirect stdout: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let without = format!("{}_unanalysed", args.database_url);
    let result = runtime.block_on(async {
        let result = run(&args, &without).await;
        for url in [&args.database_url, &without] {
            if let Err(e) = drop_database(url).await {
                eprintln!("first-page: dropping {url}: {e:#}");
            }
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
            eprintln!("first-page: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: &Args, without: &str) -> anyhow::Result<String> {
    ensure!(args.imports > 0 && args.rows > 0 && args.rows <= 10_000);
    ensure!(args.seconds > 0 && args.concurrency > 0);
    herald::telemetry::init();
    let mut report = format!(
        "first-page: {} contacts imported as {} x {} into a new tenant; GET /api/contacts?limit=50, \
         {} client(s), {} s a phase\n",
        args.imports * args.rows,
        args.imports,
        args.rows,
        args.concurrency,
        args.seconds
    );
    let off = Run::measure(args, without, false).await?;
    report += &off.lines("without analysis");
    let on = Run::measure(args, &args.database_url, true).await?;
    report += &on.lines("as migrated");
    let ratio = on.fresh.p50 / on.analysed.p50;
    report += &format!(
        "first page after the imports / after ANALYZE, p50: {ratio:.2}x as migrated (target <= 1.5x): {}; \
         {:.1}x without analysis\n",
        if ratio <= 1.5 { "PASS" } else { "FAIL" },
        off.fresh.p50 / off.analysed.p50
    );
    Ok(report)
}

/// One database's run.
struct Run {
    imports: Duration,
    /// ANALYZEs of `contacts` the imports ran.
    analyses: i64,
    fresh: Figures,
    fresh_plan: String,
    analysed: Figures,
    analysed_plan: String,
}

impl Run {
    async fn measure(args: &Args, url: &str, analysis: bool) -> anyhow::Result<Run> {
        drop_database(url).await?;
        let jwt = JwtConfig {
            hs256_secret: Some(SECRET.to_owned()),
            ..JwtConfig::default()
        };
        let mut config = ServerConfig::new(url.to_owned(), jwt);
        config.run_sender = false;
        config.scheduler_every = None;
        config.observer.rate_limit_per_minute = u32::MAX;
        let running = server::start(config).await.context("server")?;
        let owner = database::owner_pool(url).await?;
        // Nothing but the bench analyses; autovacuum would, a minute or more later.
        sqlx::query("ALTER TABLE contacts SET (autovacuum_enabled = off)")
            .execute(&owner)
            .await?;
        if !analysis {
            sqlx::query(
                "CREATE OR REPLACE FUNCTION app.analyze_if_unseen(p_table text, p_key uuid, p_rows bigint)
                 RETURNS boolean LANGUAGE sql AS 'SELECT false'",
            )
            .execute(&owner)
            .await?;
        }
        let tenant = tenant::create(&owner, "Bench tenant", OWNER_SUB).await?.id;
        let token = token::issue(SECRET, OWNER_SUB, None, 3600)?;
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()?;
        let base = format!("http://{}", running.addr);
        let target = Target {
            client,
            url: format!("{base}/api/contacts?limit=50"),
            token,
            tenant,
        };

        let which = if analysis {
            "as migrated"
        } else {
            "without analysis"
        };
        eprintln!("first-page: {which}: importing");
        let started = Instant::now();
        for i in 0..args.imports {
            let rows: Vec<Value> = (i * args.rows..(i + 1) * args.rows)
                .map(|n| {
                    json!({
                        "name": format!("Contact {n}"),
                        "phone": format!("+14152{n:06}"),
                        "email": format!("contact{n}@example.com"),
                    })
                })
                .collect();
            let reply = target
                .client
                .post(format!("{base}/api/contacts/import"))
                .bearer_auth(&target.token)
                .header("X-Tenant-ID", tenant.to_string())
                .json(&rows)
                .send()
                .await?;
            ensure!(reply.status() == 200, "import answered {}", reply.status());
            let report: Value = reply.json().await?;
            ensure!(report["imported"] == args.rows, "import: {report}");
        }
        let imports = started.elapsed();
        let analyses: i64 = sqlx::query_scalar(
            "SELECT analyze_count FROM pg_stat_user_tables WHERE relname = 'contacts'",
        )
        .fetch_one(&owner)
        .await?;
        drained(&owner).await?;

        eprintln!("first-page: {which}: the first page");
        let fresh_plan = plan(url, tenant).await?;
        let fresh = target.phase(args).await?;
        sqlx::query("ANALYZE contacts").execute(&owner).await?;
        eprintln!("first-page: {which}: after ANALYZE");
        let analysed_plan = plan(url, tenant).await?;
        let analysed = target.phase(args).await?;
        Ok(Run {
            imports,
            analyses,
            fresh,
            fresh_plan,
            analysed,
            analysed_plan,
        })
    }

    fn lines(&self, name: &str) -> String {
        format!(
            "{name}: imports {:.2} s ({} ANALYZE of contacts)\n  \
             right after: {}  [{}]\n  after ANALYZE: {}  [{}]\n",
            self.imports.as_secs_f64(),
            self.analyses,
            self.fresh,
            self.fresh_plan,
            self.analysed,
            self.analysed_plan
        )
    }
}

/// Waits for the dispatcher to stamp the imports' 100,000 events, so that it does not share
/// the cores with the measurements.
async fn drained(owner: &PgPool) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let pending: i64 =
            sqlx::query_scalar("SELECT count(*) FROM outbox_events WHERE dispatched_at IS NULL")
                .fetch_one(owner)
                .await?;
        if pending == 0 {
            return Ok(());
        }
        ensure!(Instant::now() < deadline, "{pending} events still pending");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The plan of the page's statement as `herald_app` in the tenant, in brief.
async fn plan(url: &str, tenant: Uuid) -> anyhow::Result<String> {
    let app_url = url.replacen("postgres://postgres@", "postgres://herald_app@", 1);
    let mut conn = PgConnection::connect(&app_url).await?;
    let mut tx = conn.begin().await?;
    sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
        .bind(tenant.to_string())
        .execute(&mut *tx)
        .await?;
    let query = ListQuery {
        limit: Limit::parse(Some("50")).map_err(|e| anyhow::anyhow!("{}", e.0))?,
        offset: None,
        cursor: None,
        search: None,
        group: None,
    };
    let mut explain = QueryBuilder::<Postgres>::new("EXPLAIN (FORMAT JSON) ");
    push_page(&mut explain, tenant, &query);
    let plan: Value = explain.build_query_scalar().fetch_one(&mut *tx).await?;
    tx.rollback().await?;
    let mut steps = Vec::new();
    describe(&plan[0]["Plan"], &mut steps);
    Ok(steps.join(" < "))
}

/// Sorts and scans, outermost first.
fn describe(node: &Value, steps: &mut Vec<String>) {
    let kind = node["Node Type"].as_str().unwrap_or("?");
    let rows = node["Plan Rows"].as_f64().unwrap_or(0.0);
    if kind.contains("Sort") {
        steps.push(format!("{kind} ({rows} rows expected)"));
    } else if kind.contains("Scan") {
        let direction = match node["Scan Direction"].as_str() {
            Some("Backward") => " Backward",
            _ => "",
        };
        let index = node["Index Name"]
            .as_str()
            .map_or(String::new(), |i| format!(" {i}"));
        steps.push(format!("{kind}{direction}{index} ({rows} rows expected)"));
    }
    for child in node["Plans"].as_array().into_iter().flatten() {
        describe(child, steps);
    }
}

struct Target {
    client: reqwest::Client,
    url: String,
    token: String,
    tenant: Uuid,
}

impl Target {
    /// `--concurrency` closed loops for `--seconds`; every answer must be a 200.
    async fn phase(&self, args: &Args) -> anyhow::Result<Figures> {
        let started = Instant::now();
        let end = started + Duration::from_secs(args.seconds);
        let tenant = self.tenant.to_string();
        let loops = (0..args.concurrency).map(|_| async {
            let mut latencies = Vec::new();
            while Instant::now() < end {
                let t0 = Instant::now();
                let reply = self
                    .client
                    .get(&self.url)
                    .bearer_auth(&self.token)
                    .header("X-Tenant-ID", &tenant)
                    .send()
                    .await?;
                ensure!(
                    reply.status() == 200,
                    "the page answered {}",
                    reply.status()
                );
                reply.bytes().await?;
                latencies.push(t0.elapsed());
            }
            Ok(latencies)
        });
        let mut latencies = Vec::new();
        for one in futures_util::future::join_all(loops).await {
            latencies.extend(one?);
        }
        Ok(Figures::of(latencies, started.elapsed()))
    }
}

struct Figures {
    requests: usize,
    rps: f64,
    mean: f64,
    p50: f64,
    p99: f64,
}

impl Figures {
    fn of(mut latencies: Vec<Duration>, wall: Duration) -> Figures {
        latencies.sort();
        let n = latencies.len().max(1);
        let ms = |d: &Duration| d.as_secs_f64() * 1000.0;
        let pct = |p: f64| {
            latencies
                .get(((p * n as f64).ceil() as usize).clamp(1, n) - 1)
                .map_or(0.0, ms)
        };
        Figures {
            requests: latencies.len(),
            rps: latencies.len() as f64 / wall.as_secs_f64(),
            mean: latencies.iter().map(ms).sum::<f64>() / n as f64,
            p50: pct(0.5),
            p99: pct(0.99),
        }
    }
}

impl std::fmt::Display for Figures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.0} req/s, mean {:.2} ms, p50 {:.2} ms, p99 {:.2} ms ({} requests)",
            self.rps, self.mean, self.p50, self.p99, self.requests
        )
    }
}
