//! `contacts-list`: how fast `GET /api/contacts?limit=50` is through herald-local, next to
//! pgbench running the same SELECT, and what row-level security costs that SELECT.
//!
//! One run: a fresh database, herald-local started in-process, 100,000 contacts loaded with
//! set-based SQL, rounds of HTTP load at fixed concurrency alternating with pgbench runs of
//! the handler's query with `set_config` (the gateway is compared with their mean, which
//! evens out pgbench's run-to-run spread and the machine's drift), pgbench with
//! `app.enter_tenant` and with literals instead of bind parameters, pgbench with one client
//! as the owner and as `herald_app`, CPU accounting from /proc, a summary on stdout, the
//! database dropped. Progress goes to stderr. See bench/README.md.
//!
//! herald writes one JSON log line and one EMF line per request to stdout. While the server
//! runs, file descriptor 1 points at `--server-log` (default `/dev/null`); the figures are
//! printed on the original stdout.

use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail, ensure};
use clap::Parser;
use herald::config::JwtConfig;
use herald_local::server::{self, ServerConfig};
use herald_local::{database, tenant, token};
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use serde::Deserialize;
use serde::de::IgnoredAny;
use sqlx::migrate::MigrateDatabase;
use sqlx::postgres::{PgConnectOptions, PgSslMode};
use sqlx::{PgPool, Postgres};
use uuid::Uuid;

#[path = "stdout.rs"]
mod stdout;
use stdout::redirect_stdout;

/// The allocator `herald-local serve` runs with (local/src/main.rs).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// HS256 secret the in-process server accepts; the bench signs its token with it.
const SECRET: &str = "herald-bench-secret-not-for-production";
const OWNER_SUB: &str = "bench-owner";
const OTHER_SUB: &str = "other-owner";
/// Rows of the second tenant, which RLS (and the tenant filter) must leave out.
const OTHER_TENANT_CONTACTS: i32 = 1_000;
/// `limit=50`; the handler asks for one more row to know whether a next page exists.
const PAGE: usize = 50;

/// The columns `store::list` selects (`columns!()` in shared/src/contacts/store.rs), on one
/// line so that pgbench's per-statement report shows the statement on one line.
const COLUMNS: &str = "id, tenant_id, name, phone, email, attributes, opted_out_at, \
                       (opted_out_at IS NOT NULL) AS opted_out, created_at, updated_at, deleted_at";

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum LoadGenerator {
    Wrk,
    Reqwest,
}

#[derive(Parser, Debug)]
#[command(
    name = "contacts-list",
    about = "Benchmark GET /api/contacts?limit=50 through herald-local against pgbench"
)]
struct Args {
    /// Length of each measured phase (a round of HTTP load, each pgbench run).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Rounds of HTTP load, each between two runs of pgbench's headline script; the
    /// headline ratio is all rounds' requests a second over the mean of all those runs.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Contacts loaded for the benchmarked tenant.
    #[arg(long, default_value_t = 100_000)]
    contacts: i32,
    /// Concurrent HTTP requests (and pgbench clients).
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Unmeasured HTTP load before the measured phase.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// The owner's connection; this database is dropped, recreated and dropped again.
    #[arg(
        long,
        env = "HERALD_BENCH_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/herald_bench"
    )]
    database_url: String,
    /// The server's pool size (default: herald-local's own, ServerConfig.db_max_connections).
    #[arg(long)]
    db_max_connections: Option<u32>,
    /// Tokio worker threads of the server's runtime (default: the number of CPUs).
    #[arg(long)]
    server_threads: Option<usize>,
    /// What sends the HTTP load: `wrk` (Debian package `wrk`), a C load generator as lean as
    /// pgbench is on its side, or `reqwest`, this process's own client, which checks every
    /// answer's body too but costs the shared CPUs about three times what wrk does.
    #[arg(long, value_enum, default_value_t = LoadGenerator::Wrk)]
    load_generator: LoadGenerator,
    /// Worker threads of the reqwest load generator's own runtime; 0 runs it on the server's.
    #[arg(long, default_value_t = 1)]
    client_threads: usize,
    /// Where the server's stdout (a log line and an EMF line per request) goes.
    #[arg(long, default_value = "/dev/null")]
    server_log: PathBuf,
    /// Do not install herald's JSON log subscriber (EMF lines are printed regardless).
    #[arg(long)]
    no_telemetry: bool,
    /// Leave the database in place at the end.
    #[arg(long)]
    keep_database: bool,
    /// Measure the gateway only (no pgbench), e.g. to compare server settings quickly.
    #[arg(long)]
    gateway_only: bool,
    /// Also measure the seed's `contacts.list` through `/api/trpc` in every round, right
    /// after the REST load, and compare the two (target: within 10 %).
    #[arg(long)]
    trpc: bool,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let mut out = match redirect_stdout(&args.server_log) {
        Ok(out) => out,
        Err(e) => {
            eprintln!(
                "contacts-list: cannot redirect stdout to {}: {e}",
                args.server_log.display()
            );
            return std::process::ExitCode::FAILURE;
        }
    };
    // reqwest is built with `rustls-no-provider`; plain http needs no TLS, but building a
    // client without a provider panics.
    let _ = rustls::crypto::ring::default_provider().install_default();

    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let server_threads = args.server_threads.unwrap_or(cpus).max(1);
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(server_threads)
        .thread_name("server")
        .enable_all()
        .build()
        .expect("server runtime");
    let client_rt = (args.client_threads > 0).then(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.client_threads)
            .thread_name("load")
            .enable_all()
            .build()
            .expect("load runtime")
    });
    let setup = Setup {
        cpus,
        server_threads,
        client: client_rt.as_ref().map(|rt| rt.handle().clone()),
    };

    let result = server_rt.block_on(async {
        let result = run(&args, &setup).await;
        if !args.keep_database
            && let Err(e) = drop_database(&args.database_url).await
        {
            eprintln!("contacts-list: could not drop the bench database: {e}");
        }
        result
    });
    if let Some(rt) = client_rt {
        rt.shutdown_background();
    }
    server_rt.shutdown_background();

    match result {
        Ok(report) => {
            let _ = out.write_all(report.as_bytes());
            let _ = out.flush();
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("contacts-list: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Drops the bench database with `WITH (FORCE)`, which ends its sessions and drops it in one
/// statement. The server's background tasks still live on the runtime at this point and
/// reconnect: sqlx's terminate-then-drop lost that race ("being accessed by other users").
async fn drop_database(url: &str) -> anyhow::Result<()> {
    let options = PgConnectOptions::from_str(url)?;
    let name = options
        .get_database()
        .context("the database URL must name a database")?
        .replace('"', "\"\"");
    let maintenance = PgPool::connect_with(options.database("postgres")).await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
    )))
    .execute(&maintenance)
    .await?;
    maintenance.close().await;
    Ok(())
}

struct Setup {
    cpus: usize,
    server_threads: usize,
    /// The load generator's runtime; `None`: the server's.
    client: Option<tokio::runtime::Handle>,
}

async fn run(args: &Args, setup: &Setup) -> anyhow::Result<String> {
    ensure!(args.seconds > 0, "--seconds must be at least 1");
    ensure!(args.concurrency > 0, "--concurrency must be at least 1");
    ensure!(args.rounds > 0, "--rounds must be at least 1");
    ensure!(
        (1..100_000_000).contains(&args.contacts),
        "--contacts must be from 1 to 99,999,999"
    );
    ensure!(
        args.contacts as usize > PAGE,
        "--contacts must exceed the page size ({PAGE})"
    );
    let options = PgConnectOptions::from_str(&args.database_url)?;
    let db_name = options
        .get_database()
        .context("the database URL must name a database")?
        .to_owned();
    ensure!(
        db_name != "postgres" && db_name != "template1",
        "refusing to drop database {db_name}"
    );
    let conn = PgTarget {
        host: options.get_host().to_owned(),
        port: options.get_port(),
        db: db_name.clone(),
        owner: options.get_username().to_owned(),
        sslmode: match options.get_ssl_mode() {
            PgSslMode::Disable => "disable",
            PgSslMode::Allow => "allow",
            PgSslMode::Prefer => "prefer",
            PgSslMode::Require => "require",
            PgSslMode::VerifyCa => "verify-ca",
            PgSslMode::VerifyFull => "verify-full",
        },
    };

    // 1. Fresh database, server, tenants, contacts.
    eprintln!("contacts-list: recreating database {db_name}");
    drop_database(&args.database_url).await?;
    Postgres::create_database(&args.database_url).await?;
    if !args.no_telemetry {
        // As `herald-local serve` does: JSON log lines on stdout.
        herald::telemetry::init();
    }
    let jwt = JwtConfig {
        hs256_secret: Some(SECRET.to_owned()),
        ..JwtConfig::default()
    };
    let mut config = ServerConfig::new(args.database_url.clone(), jwt);
    if let Some(n) = args.db_max_connections {
        config.db_max_connections = n;
    }
    // The bench tenant makes thousands of requests a second: no rate limit in the way.
    config.observer.rate_limit_per_minute = u32::MAX;
    let pool_size = config.db_max_connections;
    let running = server::start(config)
        .await
        .context("starting herald-local")?;
    eprintln!("contacts-list: herald-local on http://{}", running.addr);

    let owner = database::owner_pool(&args.database_url).await?;
    let bench = tenant::create(&owner, "Bench tenant", OWNER_SUB).await?;
    let other = tenant::create(&owner, "Other tenant", OTHER_SUB).await?;
    let started = Instant::now();
    let now_ms = i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis())?;
    // Ids are UUIDv7 one millisecond apart, so id order is creation order; the other
    // tenant's rows are older than the bench tenant's.
    let first_ms = now_ms - i64::from(args.contacts) - i64::from(OTHER_TENANT_CONTACTS) - 1_000;
    load_contacts(
        &owner,
        other.id,
        OTHER_TENANT_CONTACTS,
        "+1212",
        "other.example",
        first_ms,
    )
    .await?;
    load_contacts(
        &owner,
        bench.id,
        args.contacts,
        "+1415",
        "bench.example",
        first_ms + i64::from(OTHER_TENANT_CONTACTS),
    )
    .await?;
    sqlx::raw_sql("VACUUM (ANALYZE) contacts, tenants, tenant_members")
        .execute(&owner)
        .await?;
    eprintln!(
        "contacts-list: loaded {} + {} contacts in {:.1} s",
        args.contacts,
        OTHER_TENANT_CONTACTS,
        started.elapsed().as_secs_f64()
    );

    // 2. pgbench's scripts, and the main comparison's pgbench run once before the HTTP load
    // and once after it (step 4): the machine's speed drifts by several percent over a
    // minute, and the gateway is compared with the mean of the two runs around it.
    let dir = std::env::temp_dir().join(format!("herald-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let pg = Pgbench {
        conn,
        owner_pool: owner.clone(),
        dir: dir.clone(),
        seconds: args.seconds,
        vars: vec![
            ("tenant", bench.id.to_string()),
            ("sub", OWNER_SUB.to_owned()),
        ],
    };
    // As the handler sends it: the tenant a bind parameter, the validated LIMIT a literal
    // (see `Limit::fetch`).
    let select = format!(
        "SELECT {COLUMNS} FROM contacts WHERE tenant_id = :tenant AND deleted_at IS NULL \
         ORDER BY id DESC LIMIT {};",
        PAGE + 1
    );
    // With literals instead: a prepared statement without parameters is planned once.
    let select_literal = format!(
        "SELECT {COLUMNS} FROM contacts WHERE tenant_id = '{}' AND deleted_at IS NULL \
         ORDER BY id DESC LIMIT {};",
        bench.id,
        PAGE + 1
    );
    let in_tx = |enter: &str, select: &str| format!("BEGIN;\n{enter}\n{select}\nCOMMIT;\n");
    let set_config = "SELECT set_config('app.tenant_id', :tenant, true);";
    let set_config_literal = format!("SELECT set_config('app.tenant_id', '{}', true);", bench.id);
    let scripts = Scripts {
        set_config: write_script(&dir, "set_config.sql", &in_tx(set_config, &select))?,
        enter_tenant: write_script(
            &dir,
            "enter_tenant.sql",
            // As the handler calls it, a request id included (it names the session).
            &in_tx(
                "SELECT app.enter_tenant(:tenant, :sub, '01a21a6b2c3d7e8f9a0b1c2d3e4f5a6b');",
                &select,
            ),
        )?,
        set_config_literal: write_script(
            &dir,
            "set_config_literal.sql",
            &in_tx(&set_config_literal, &select_literal),
        )?,
        bare: write_script(&dir, "select.sql", &format!("{select}\n"))?,
        bare_literal: write_script(&dir, "select_literal.sql", &format!("{select_literal}\n"))?,
    };
    let clients = args.concurrency as u32;
    let app = database::APP_ROLE;
    let owner_role = pg.conn.owner.clone();
    let headline = |label: String| {
        let script = scripts.set_config.clone();
        let pg = &pg;
        async move { pg.stage(&label, app, &script, clients, false).await }
    };

    // 3. HTTP load in rounds, each between two runs of the headline pgbench script:
    // pgbench's figure moves by a tenth or more from one run to the next, and the machine's
    // speed drifts within a minute; several runs around the rounds even both out.
    let token = token::issue(SECRET, OWNER_SUB, None, 3600)?;
    let addr = running.addr;
    let http = Http::new(args, setup, rest_url(addr), &token, bench.id, &dir, &pg)?;
    http.check()
        .await
        .map_err(|e| anyhow::anyhow!("the first request failed: {e}"))?;
    let trpc = match args.trpc {
        true => Some(Http::new(
            args,
            setup,
            trpc_url(addr),
            &token,
            bench.id,
            &dir,
            &pg,
        )?),
        false => None,
    };
    if let Some(trpc) = &trpc {
        trpc.check()
            .await
            .map_err(|e| anyhow::anyhow!("the first tRPC request failed: {e}"))?;
    }
    let mut trpc_rounds: Vec<Round> = Vec::new();
    let mut pg_headline: Vec<Option<PgbenchRun>> = Vec::new();
    if !args.gateway_only {
        pg_headline.push(headline("set_config, parameters (before round 1)".into()).await);
    }
    let mut rounds: Vec<Round> = Vec::new();
    for i in 1..=args.rounds {
        // With --trpc, REST goes first in odd rounds and tRPC in even ones: the machine's
        // speed drifts within a round too.
        let trpc_first = i % 2 == 0;
        if let Some(trpc) = trpc.as_ref().filter(|_| trpc_first) {
            trpc_rounds.push(trpc.printed_round(i).await?);
        }
        rounds.push(http.printed_round(i).await?);
        if let Some(trpc) = trpc.as_ref().filter(|_| !trpc_first) {
            trpc_rounds.push(trpc.printed_round(i).await?);
        }
        if !args.gateway_only {
            pg_headline.push(headline(format!("set_config, parameters (after round {i})")).await);
        }
    }
    // wrk counts statuses only: the body must still be a full page after the load.
    if let Err(e) = http.check().await {
        eprintln!("contacts-list: the request after the load failed: {e}");
    }
    running.task.abort();
    let _ = running.task.await;
    let gateway = Round::total(&rounds);
    let trpc_summary = match trpc_rounds.is_empty() {
        true => String::new(),
        false => trpc_comparison(&rounds, &gateway, &trpc_rounds),
    };
    if args.gateway_only {
        let _ = std::fs::remove_dir_all(&dir);
        return Ok(trpc_summary);
    }

    // 4. and 5. pgbench's other scripts.
    let pg_enter = pg
        .stage(
            "enter_tenant, parameters",
            app,
            &scripts.enter_tenant,
            clients,
            false,
        )
        .await;
    let pg_literal = pg
        .stage(
            "set_config, literals",
            app,
            &scripts.set_config_literal,
            clients,
            false,
        )
        .await;
    // RLS: one client, the owner and herald_app alternately, each run half as long.
    let short = pg.for_seconds((args.seconds / 2).max(1));
    let rls = Rls::measure(
        &short,
        "parameters",
        &owner_role,
        &scripts.bare,
        &scripts.set_config,
        args.rounds,
    )
    .await;
    let rls_literal = Rls::measure(
        &short,
        "literals",
        &owner_role,
        &scripts.bare_literal,
        &scripts.set_config_literal,
        args.rounds,
    )
    .await;
    let _ = std::fs::remove_dir_all(&dir);

    // 6. Summary.
    let mut s = String::new();
    writeln!(
        s,
        "contacts-list benchmark ({} contacts, concurrency {}, {} round(s) of {} s)",
        args.contacts,
        args.concurrency,
        rounds.len(),
        args.seconds
    )?;
    s.push_str(&trpc_summary);
    let list = |values: &mut dyn Iterator<Item = String>| values.collect::<Vec<_>>().join(", ");
    writeln!(
        s,
        "gateway  GET /api/contacts?limit={PAGE}: {:.0} req/s (rounds: {}), p50 {:.1} ms, p99 {:.1} ms, {} errors",
        gateway.load.rps(),
        list(&mut rounds.iter().map(|r| format!("{:.0}", r.load.rps()))),
        ms(gateway.load.p50),
        ms(gateway.load.p99),
        gateway.load.errors
    )?;
    let tps = |r: &Option<PgbenchRun>| r.as_ref().map(|r| r.tps).filter(|&tps| tps > 0.0);
    let headline_tps = mean(&pg_headline.iter().filter_map(tps).collect::<Vec<_>>());
    writeln!(
        s,
        "pgbench  same SELECT in a tenant tx:  {} (runs: {})",
        match headline_tps {
            Some(m) => format!("{m:.0} tps"),
            None => "n/a (pgbench failed)".to_owned(),
        },
        list(&mut pg_headline.iter().map(|r| match tps(r) {
            Some(t) => format!("{t:.0}"),
            None => "failed".to_owned(),
        }))
    )?;
    let tps_line = |r: &Option<PgbenchRun>| match r {
        Some(r) => format!("{:.0} tps (avg {:.2} ms)", r.tps, r.latency_ms),
        None => "n/a (pgbench failed)".to_owned(),
    };
    writeln!(
        s,
        "pgbench  with app.enter_tenant:       {}",
        tps_line(&pg_enter)
    )?;
    writeln!(
        s,
        "pgbench  set_config, literals:        {}",
        tps_line(&pg_literal)
    )?;
    // The headline: the rounds' requests a second over the mean of all the pgbench runs
    // around them. The gateway holds steady from round to round; pgbench's figure moves by a
    // tenth or more from one run to the next, and its mean over several runs steadies it.
    // Each round against the two runs either side of it shows the spread.
    let per_round: Vec<String> = rounds
        .iter()
        .enumerate()
        .filter_map(|(i, round)| {
            let either_side: Vec<f64> = pg_headline[i..=i + 1].iter().filter_map(tps).collect();
            mean(&either_side).map(|t| format!("{:.1} %", 100.0 * round.load.rps() / t))
        })
        .collect();
    match headline_tps {
        Some(t) => writeln!(
            s,
            "gateway / pgbench: {:.1} % (target >= 50 %); round by round against the pgbench runs either side: {}",
            100.0 * gateway.load.rps() / t,
            per_round.join(", ")
        )?,
        None => writeln!(s, "gateway / pgbench: n/a (target >= 50 %)")?,
    }
    writeln!(s, "RLS vs owner (1 client): {}", rls.line())?;
    writeln!(s, "RLS vs owner, literals:  {}", rls_literal.line())?;
    writeln!(s)?;
    writeln!(
        s,
        "  pgbench runs: -M prepared; \"parameters\" binds the tenant and writes LIMIT {} as the \
         handler does; \"literals\" inlines the tenant too.",
        PAGE + 1
    )?;
    writeln!(
        s,
        "  RLS lines: the SELECT's own latency (pgbench -r), as {app} in BEGIN/set_config/…/COMMIT \
         vs as {owner_role} (no RLS) alone, means of {} alternating runs of {} s each.",
        args.rounds, short.seconds
    )?;
    for (name, r) in [("parameters", &rls), ("literals", &rls_literal)] {
        if let (Some(a), Some(o)) = (Rls::tx_ms(&r.app), Rls::tx_ms(&r.owner)) {
            writeln!(
                s,
                "    whole transactions, {name}: {a:.3} ms vs {o:.3} ms; SELECT run by run: {}",
                r.pairs()
            )?;
        }
    }
    let clients_runs = pg_headline
        .iter()
        .map(|r| ("set_config", r))
        .chain([("enter_tenant", &pg_enter), ("literals", &pg_literal)])
        .filter_map(|(name, run)| Some((name, run.as_ref()?)));
    let rls_runs = [&rls, &rls_literal]
        .into_iter()
        .flat_map(|r| r.owner.iter().chain(&r.app))
        .map(|run| ("1 client", run));
    for (name, run) in clients_runs.chain(rls_runs) {
        if run.failed > 0 {
            writeln!(s, "  pgbench ({name}): {} failed transactions", run.failed)?;
        }
    }
    let gateway_us = gateway.cpu_per_request();
    let gateway_total: f64 = gateway_us.iter().sum();
    writeln!(
        s,
        "  CPU per operation, from /proc (other work on the machine left out), all rounds or runs together:"
    )?;
    writeln!(
        s,
        "    gateway request:  server {:.0} us + load generator {:.0} us + PostgreSQL {:.0} us \
         ({} backends) = {gateway_total:.0} us",
        gateway_us[0], gateway_us[1], gateway_us[2], gateway.backends.count
    )?;
    let headline_runs: Vec<&PgbenchRun> = pg_headline.iter().flatten().collect();
    let mut pgbench_total = None;
    for (name, runs) in [
        ("set_config", headline_runs.clone()),
        ("enter_tenant", pg_enter.iter().collect()),
        ("literals", pg_literal.iter().collect()),
    ] {
        if let Some([client, server]) = pgbench_cpu_per_tx(&runs) {
            writeln!(
                s,
                "    pgbench tx ({name}):{:pad$}pgbench {client:.0} us + PostgreSQL {server:.0} us = {:.0} us",
                "",
                client + server,
                pad = 13 - name.len()
            )?;
            pgbench_total.get_or_insert(client + server);
        }
    }
    if let Some(p) = pgbench_total
        && gateway_total > 0.0
    {
        writeln!(
            s,
            "    CPU-bound estimate of gateway / pgbench (set_config) on an otherwise idle machine: \
             {p:.0} / {gateway_total:.0} = {:.1} %",
            100.0 * p / gateway_total
        )?;
    }
    let http_cpu = &gateway.cpu;
    writeln!(
        s,
        "  CPU, measured HTTP windows (100 % = one core): server threads {:.0} %, load generator {:.0} %, \
         PostgreSQL (all databases) {:.0} %, anything else {:.0} %, machine busy {:.0} % of {} %",
        http_cpu.share(http_cpu.server),
        http_cpu.share(http_cpu.load + http_cpu.children),
        http_cpu.share(http_cpu.postgres),
        http_cpu.share(http_cpu.other()),
        http_cpu.share(http_cpu.machine_busy),
        100 * setup.cpus
    )?;
    let pg_cpu = |runs: &[&PgbenchRun]| {
        let cpu = runs.iter().map(|r| r.cpu).sum::<CpuUse>();
        (!cpu.wall.is_zero()).then_some(cpu)
    };
    for (name, cpu) in [
        ("set_config", pg_cpu(&headline_runs)),
        ("enter_tenant", pg_cpu(&pg_enter.iter().collect::<Vec<_>>())),
        ("literals", pg_cpu(&pg_literal.iter().collect::<Vec<_>>())),
    ] {
        if let Some(c) = cpu {
            writeln!(
                s,
                "  CPU, pgbench {} clients ({name}): pgbench {:.0} %, PostgreSQL (all databases) {:.0} %, \
                 anything else {:.0} %, machine busy {:.0} %",
                args.concurrency,
                c.share(c.children),
                c.share(c.postgres),
                c.share(c.other()),
                c.share(c.machine_busy),
            )?;
        }
    }
    let busiest_other = rounds
        .iter()
        .map(|r| &r.cpu)
        .chain(headline_runs.iter().map(|r| &r.cpu))
        .map(|c| c.share(c.other()))
        .fold(0.0, f64::max);
    if busiest_other > 15.0 {
        writeln!(
            s,
            "  WARNING: other processes used up to {busiest_other:.0} % of a core during the measurements; \
             the figures understate what this machine can do"
        )?;
    }
    writeln!(
        s,
        "  gateway: {} requests measured, mean {:.2} ms, max {:.1} ms; server runtime {} threads, \
         load generator {}, db pool {}",
        gateway.load.ok,
        ms(gateway.load.mean),
        ms(gateway.load.max),
        setup.server_threads,
        match args.load_generator {
            LoadGenerator::Wrk => format!("wrk, {} thread(s)", http.wrk.threads),
            LoadGenerator::Reqwest if args.client_threads == 0 => {
                "reqwest on the server's runtime".to_owned()
            }
            LoadGenerator::Reqwest => format!("reqwest, {} thread(s)", args.client_threads),
        },
        pool_size
    )?;
    writeln!(
        s,
        "  server, load generator, PostgreSQL and pgbench share {} CPU(s); server stdout -> {}; \
         telemetry {}; RUST_LOG={}; sslmode={} (server and pgbench)",
        setup.cpus,
        args.server_log.display(),
        if args.no_telemetry { "off" } else { "on" },
        std::env::var("RUST_LOG").unwrap_or_else(|_| "(unset)".into()),
        pg.conn.sslmode
    )?;
    Ok(s)
}

fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

/// pgbench's own CPU and its backends' a transaction, over `runs` together.
fn pgbench_cpu_per_tx(runs: &[&PgbenchRun]) -> Option<[f64; 2]> {
    let (mut txs, mut client) = (0.0, Duration::ZERO);
    // The backends were read over part of each run: their CPU a transaction is the cores
    // they kept busy over the transactions a second, averaged over the runs by length.
    let (mut backend_s, mut weight) = (0.0, 0.0);
    for r in runs.iter().filter(|r| r.tps > 0.0) {
        let wall = r.cpu.wall.as_secs_f64();
        txs += r.tps * wall;
        client += r.cpu.children;
        if let Some(b) = r.backends {
            backend_s += b.cores() / r.tps * wall;
            weight += wall;
        }
    }
    (txs > 0.0 && weight > 0.0)
        .then(|| [client.as_secs_f64() * 1e6 / txs, backend_s * 1e6 / weight])
}

fn rest_url(addr: std::net::SocketAddr) -> String {
    format!("http://{addr}/api/contacts?limit={PAGE}")
}

/// The seed's `trpc.contacts.list.query({ limit: 50 })` as `httpLink` sends it.
fn trpc_url(addr: std::net::SocketAddr) -> String {
    // `{"limit":50}`, URL-encoded.
    format!("http://{addr}/api/trpc/contacts.list?input=%7B%22limit%22%3A{PAGE}%7D")
}

/// `contacts.list` through tRPC against `GET /api/contacts` over the same rounds, each tRPC
/// round right after its REST round.
fn trpc_comparison(rest_rounds: &[Round], rest: &Round, trpc_rounds: &[Round]) -> String {
    let trpc = Round::total(trpc_rounds);
    let ratio = |t: &Round, r: &Round| 100.0 * t.load.rps() / r.load.rps().max(f64::MIN_POSITIVE);
    let by_round: Vec<String> = trpc_rounds
        .iter()
        .zip(rest_rounds)
        .map(|(t, r)| format!("{:.1} %", ratio(t, r)))
        .collect();
    format!(
        "trpc     contacts.list (httpLink): {:.0} req/s against GET /api/contacts {:.0} req/s: \
         {:.1} % (target >= 90 %); round by round: {}; p50 {:.1} ms against {:.1} ms, {} errors\n",
        trpc.load.rps(),
        rest.load.rps(),
        ratio(&trpc, rest),
        by_round.join(", "),
        ms(trpc.load.p50),
        ms(rest.load.p50),
        trpc.load.errors,
    )
}

/// The HTTP side of the comparison: the request, its load generator, and one round of load.
struct Http<'a> {
    args: &'a Args,
    setup: &'a Setup,
    client: reqwest::Client,
    target: Arc<Target>,
    wrk: Wrk,
    /// For finding the server's backends in `pg_stat_activity`.
    owner: PgPool,
    db_name: String,
}

/// What one round of HTTP load measured.
struct Round {
    load: Measured,
    cpu: CpuUse,
    /// The server's backends over the measured window.
    backends: BackendCpu,
}

impl<'a> Http<'a> {
    fn new(
        args: &'a Args,
        setup: &'a Setup,
        url: String,
        token: &str,
        tenant: Uuid,
        dir: &Path,
        pg: &Pgbench,
    ) -> anyhow::Result<Http<'a>> {
        let target = Arc::new(Target { url });
        let mut headers = HeaderMap::new();
        let mut auth = HeaderValue::from_str(&format!("Bearer {token}"))?;
        auth.set_sensitive(true);
        headers.insert(AUTHORIZATION, auth);
        headers.insert("x-tenant-id", HeaderValue::from_str(&tenant.to_string())?);
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .pool_max_idle_per_host(args.concurrency)
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(30))
            .build()?;
        let wrk = Wrk {
            url: target.url.clone(),
            headers: vec![
                format!("Authorization: Bearer {token}"),
                format!("X-Tenant-ID: {tenant}"),
            ],
            connections: args.concurrency,
            // As many as pgbench gets (`-j`).
            threads: args.concurrency.min(setup.cpus).max(1),
            script: write_script(dir, "report.lua", WRK_REPORT)?,
        };
        Ok(Http {
            args,
            setup,
            client,
            target,
            wrk,
            owner: pg.owner_pool.clone(),
            db_name: pg.conn.db.clone(),
        })
    }

    /// One request, whose answer must be a 200 with a full page.
    async fn check(&self) -> Result<(), String> {
        fetch(&self.client, &self.target).await
    }

    /// [`Http::round`], its figures printed.
    async fn printed_round(&self, i: usize) -> anyhow::Result<Round> {
        let round = self.round(i).await?;
        round.print(i);
        Ok(round)
    }

    /// `--warmup` seconds of unmeasured load, then `--seconds` measured.
    async fn round(&self, i: usize) -> anyhow::Result<Round> {
        let args = self.args;
        eprintln!(
            "contacts-list: HTTP load round {i} ({:?}), concurrency {}, {} s warm-up + {} s: {}",
            args.load_generator, args.concurrency, args.warmup, args.seconds, self.target.url
        );
        let application = "herald-local";
        let (load, cpu, backends) = match args.load_generator {
            LoadGenerator::Reqwest => {
                let measure_from = Instant::now() + Duration::from_secs(args.warmup);
                let end = measure_from + Duration::from_secs(args.seconds);
                let fut = load(
                    self.client.clone(),
                    Arc::clone(&self.target),
                    args.concurrency,
                    measure_from,
                    end,
                );
                let handle = match &self.setup.client {
                    Some(rt) => rt.spawn(fut),
                    None => tokio::spawn(fut),
                };
                tokio::time::sleep_until(measure_from.into()).await;
                let cpu_from = Cpu::now();
                let backends = Backends::of(&self.owner, &self.db_name, application).await;
                tokio::time::sleep_until(end.into()).await;
                let cpu = Cpu::now().since(&cpu_from);
                let backends = backends.cpu_since_start();
                (handle.await?.measured(), cpu, backends)
            }
            LoadGenerator::Wrk => {
                if args.warmup > 0 {
                    self.wrk.run(args.warmup).await?;
                }
                let cpu_from = Cpu::now();
                let backends = Backends::of(&self.owner, &self.db_name, application).await;
                let run = self.wrk.run(args.seconds).await?;
                let cpu = Cpu::now().since(&cpu_from);
                (run, cpu, backends.cpu_since_start())
            }
        };
        Ok(Round {
            load,
            cpu,
            backends,
        })
    }
}

impl Round {
    /// CPU microseconds a request: server, load generator, the server's backends.
    fn cpu_per_request(&self) -> [f64; 3] {
        let requests = self.load.ok + self.load.errors;
        [
            per_op_us(self.cpu.server, requests),
            // The reqwest client's threads, or wrk (a child process, waited for in the window).
            per_op_us(self.cpu.load + self.cpu.children, requests),
            per_op_us(self.backends.cpu, requests),
        ]
    }

    fn print(&self, i: usize) {
        if let Some(e) = &self.load.first_error {
            eprintln!("contacts-list: round {i}: first failed request: {e}");
        }
        let [server, load, postgres] = self.cpu_per_request();
        eprintln!(
            "contacts-list: round {i}: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, {} errors; CPU per request: \
             server {server:.0} us, load generator {load:.0} us, PostgreSQL {postgres:.0} us, total {:.0} us; \
             anything else {:.0} % of a core",
            self.load.rps(),
            ms(self.load.p50),
            ms(self.load.p99),
            self.load.errors,
            server + load + postgres,
            self.cpu.share(self.cpu.other()),
        );
    }

    /// All rounds as one: counts, windows and CPU added up; p50 the rounds' median, p99 and
    /// max the worst round's.
    fn total(rounds: &[Round]) -> Round {
        let ok: u64 = rounds.iter().map(|r| r.load.ok).sum();
        let weighted_mean: f64 = rounds
            .iter()
            .map(|r| r.load.mean.as_secs_f64() * r.load.ok as f64)
            .sum();
        let p50s: Vec<f64> = rounds.iter().map(|r| r.load.p50.as_secs_f64()).collect();
        let worst = |f: fn(&Measured) -> Duration| {
            rounds.iter().map(|r| f(&r.load)).max().unwrap_or_default()
        };
        Round {
            load: Measured {
                ok,
                errors: rounds.iter().map(|r| r.load.errors).sum(),
                window: rounds.iter().map(|r| r.load.window).sum(),
                p50: Duration::from_secs_f64(median(&p50s).unwrap_or(0.0)),
                p99: worst(|m| m.p99),
                mean: Duration::from_secs_f64(weighted_mean / ok.max(1) as f64),
                max: worst(|m| m.max),
                first_error: rounds.iter().find_map(|r| r.load.first_error.clone()),
            },
            cpu: rounds.iter().map(|r| r.cpu).sum(),
            backends: BackendCpu {
                count: rounds.iter().map(|r| r.backends.count).max().unwrap_or(0),
                wall: rounds.iter().map(|r| r.backends.wall).sum(),
                cpu: rounds.iter().map(|r| r.backends.cpu).sum(),
            },
        }
    }
}

struct Scripts {
    set_config: PathBuf,
    enter_tenant: PathBuf,
    set_config_literal: PathBuf,
    bare: PathBuf,
    bare_literal: PathBuf,
}

/// What row-level security costs the SELECT: one pgbench client as the owner (a superuser,
/// so no RLS) and as herald_app (RLS, in the set_config transaction), run alternately so that
/// the machine's drift falls on both alike.
struct Rls {
    owner: Vec<PgbenchRun>,
    app: Vec<PgbenchRun>,
}

impl Rls {
    async fn measure(
        pg: &Pgbench,
        name: &str,
        owner_role: &str,
        bare: &Path,
        in_tx: &Path,
        rounds: usize,
    ) -> Rls {
        let mut rls = Rls {
            owner: Vec::new(),
            app: Vec::new(),
        };
        for i in 1..=rounds {
            let stage = |role: &str| format!("1 client, {role}, {name} ({i} of {rounds})");
            rls.owner
                .extend(pg.stage(&stage("owner"), owner_role, bare, 1, true).await);
            rls.app.extend(
                pg.stage(&stage("herald_app"), database::APP_ROLE, in_tx, 1, true)
                    .await,
            );
        }
        rls
    }

    fn select_ms(runs: &[PgbenchRun]) -> Option<f64> {
        mean(
            &runs
                .iter()
                .filter_map(PgbenchRun::select_ms)
                .collect::<Vec<_>>(),
        )
    }

    fn tx_ms(runs: &[PgbenchRun]) -> Option<f64> {
        mean(&runs.iter().map(|r| r.latency_ms).collect::<Vec<_>>())
    }

    /// `RLS ms vs owner ms = ratio`, from the means of the SELECT's per-statement latencies.
    fn line(&self) -> String {
        match (Rls::select_ms(&self.app), Rls::select_ms(&self.owner)) {
            (Some(app_ms), Some(owner_ms)) if owner_ms > 0.0 => format!(
                "{app_ms:.3} ms vs {owner_ms:.3} ms = {:.2}x (target <= 1.15x)",
                app_ms / owner_ms
            ),
            _ => "n/a (target <= 1.15x)".to_owned(),
        }
    }

    /// Each pair's SELECT latencies, e.g. `0.151/0.149 ms`.
    fn pairs(&self) -> String {
        let ms = |r: &PgbenchRun| {
            r.select_ms()
                .map_or("n/a".to_owned(), |m| format!("{m:.3}"))
        };
        self.app
            .iter()
            .zip(&self.owner)
            .map(|(a, o)| format!("{}/{} ms", ms(a), ms(o)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Inserts `count` contacts for `tenant` in one statement, as the owner, in a transaction
/// whose tenant is set (the policies are FORCEd). Ids are UUIDv7 built from
/// `first_ms + i`, so they sort in creation order; phones are unique E.164 numbers.
async fn load_contacts(
    pool: &PgPool,
    tenant: Uuid,
    count: i32,
    phone_prefix: &str,
    email_domain: &str,
    first_ms: i64,
) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
        .bind(tenant.to_string())
        .execute(&mut *tx)
        .await?;
    let inserted = sqlx::query(
        "INSERT INTO contacts
             (tenant_id, id, name, phone, email, attributes, opted_out_at, created_at, updated_at)
         SELECT $1, id, 'Contact ' || i, $3 || lpad(i::text, 8, '0'), 'contact' || i || '@' || $4,
                jsonb_build_object('source', 'bench', 'plan', (ARRAY['free', 'pro', 'team'])[i % 3 + 1], 'seq', i),
                CASE WHEN i % 50 = 0 THEN at END, at, at
         FROM (
             SELECT i,
                    to_timestamp(($5::bigint + i) / 1000.0) AS at,
                    (lpad(to_hex($5::bigint + i), 12, '0') || '7' || substr(h, 1, 3)
                     || substr('89ab', get_byte(decode(substr(h, 4, 2), 'hex'), 0) % 4 + 1, 1)
                     || substr(h, 6, 15))::uuid AS id
             FROM generate_series(1, $2::int) AS i,
                  LATERAL (SELECT md5($1::text || ':' || i)) AS m(h)
         ) AS r",
    )
    .bind(tenant)
    .bind(count)
    .bind(phone_prefix)
    .bind(email_domain)
    .bind(first_ms)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    ensure!(
        inserted == count as u64,
        "inserted {inserted} contacts, expected {count}"
    );
    Ok(())
}

struct Target {
    url: String,
}

#[derive(Deserialize)]
struct Page {
    items: Vec<IgnoredAny>,
}

/// A page as REST answers it, or inside tRPC's `{"result":{"data":…}}`.
#[derive(Deserialize)]
#[serde(untagged)]
enum Answer {
    Rest(Page),
    Trpc { result: TrpcResult },
}

#[derive(Deserialize)]
struct TrpcResult {
    data: Page,
}

/// One request; `Err` describes what was wrong with it.
async fn fetch(client: &reqwest::Client, target: &Target) -> Result<(), String> {
    let response = client
        .get(&target.url)
        .send()
        .await
        .map_err(|e| format!("request: {e}"))?;
    let status = response.status();
    let body = response.bytes().await.map_err(|e| format!("body: {e}"))?;
    if status != reqwest::StatusCode::OK {
        let text = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
        return Err(format!("status {status}: {text}"));
    }
    let page = match serde_json::from_slice(&body).map_err(|e| format!("body: {e}"))? {
        Answer::Rest(page)
        | Answer::Trpc {
            result: TrpcResult { data: page },
        } => page,
    };
    if page.items.len() != PAGE {
        return Err(format!("{} items, expected {PAGE}", page.items.len()));
    }
    Ok(())
}

#[derive(Default)]
struct Load {
    /// Successful requests that started after the warm-up and ended before the end, sorted.
    latencies: Vec<Duration>,
    errors: u64,
    warmup_errors: u64,
    first_error: Option<String>,
    measured: Duration,
}

/// What one measured HTTP window did, from either load generator.
struct Measured {
    /// Requests answered as expected (200 with a full page; for wrk, any 2xx or 3xx).
    ok: u64,
    errors: u64,
    window: Duration,
    p50: Duration,
    p99: Duration,
    mean: Duration,
    max: Duration,
    first_error: Option<String>,
}

impl Measured {
    fn rps(&self) -> f64 {
        self.ok as f64 / self.window.as_secs_f64()
    }
}

impl Load {
    fn measured(self) -> Measured {
        Measured {
            ok: self.latencies.len() as u64,
            errors: self.errors,
            window: self.measured,
            p50: self.percentile(0.50),
            p99: self.percentile(0.99),
            mean: self.mean(),
            max: self.latencies.last().copied().unwrap_or_default(),
            first_error: self.first_error,
        }
    }

    /// Nearest-rank percentile.
    fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let rank = (p * self.latencies.len() as f64).ceil() as usize;
        self.latencies[rank.clamp(1, self.latencies.len()) - 1]
    }

    fn mean(&self) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        self.latencies.iter().sum::<Duration>() / self.latencies.len() as u32
    }
}

/// `concurrency` closed loops of requests for `warmup + measure`; only the measured window
/// is recorded.
async fn load(
    client: reqwest::Client,
    target: Arc<Target>,
    concurrency: usize,
    measure_from: Instant,
    end: Instant,
) -> Load {
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let client = client.clone();
            let target = Arc::clone(&target);
            tokio::spawn(async move {
                let mut out = Load::default();
                loop {
                    let t0 = Instant::now();
                    if t0 >= end {
                        break;
                    }
                    let result = fetch(&client, &target).await;
                    let t1 = Instant::now();
                    let measured = t0 >= measure_from && t1 <= end;
                    match result {
                        Ok(()) if measured => out.latencies.push(t1 - t0),
                        Ok(()) => {}
                        Err(e) => {
                            if measured {
                                out.errors += 1;
                            } else {
                                out.warmup_errors += 1;
                            }
                            out.first_error.get_or_insert(e);
                        }
                    }
                }
                out
            })
        })
        .collect();
    let mut total = Load {
        measured: end - measure_from,
        ..Load::default()
    };
    for worker in workers {
        match worker.await {
            Ok(w) => {
                total.latencies.extend(w.latencies);
                total.errors += w.errors;
                total.warmup_errors += w.warmup_errors;
                if total.first_error.is_none() {
                    total.first_error = w.first_error;
                }
            }
            Err(e) => {
                total.errors += 1;
                total.first_error.get_or_insert(format!("worker: {e}"));
            }
        }
    }
    total.latencies.sort_unstable();
    total
}

/// wrk's report, one line from its `done` hook: counts, then latencies in microseconds.
const WRK_REPORT: &str = r#"done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("herald-wrk %d %d %d %d %d %d %d %d\n",
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99), math.floor(latency.mean), latency.max))
end
"#;

/// One wrk load: `connections` keep-alive connections on `threads` threads, each sending
/// the next request as soon as the last is answered (closed loops, like pgbench's clients).
struct Wrk {
    url: String,
    headers: Vec<String>,
    connections: usize,
    threads: usize,
    script: PathBuf,
}

impl Wrk {
    async fn run(&self, seconds: u64) -> anyhow::Result<Measured> {
        let mut cmd = tokio::process::Command::new("wrk");
        cmd.arg(format!("-t{}", self.threads))
            .arg(format!("-c{}", self.connections))
            .arg(format!("-d{seconds}s"))
            .arg("--timeout=30s")
            .arg("-s")
            .arg(&self.script);
        for h in &self.headers {
            cmd.arg("-H").arg(h);
        }
        let out = cmd
            .arg(&self.url)
            .kill_on_drop(true)
            .output()
            .await
            .context("running wrk (Debian package `wrk`; or pass --load-generator reqwest)")?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        ensure!(
            out.status.success(),
            "wrk failed: {}{}",
            stdout,
            String::from_utf8_lossy(&out.stderr)
        );
        let line = stdout
            .lines()
            .find_map(|l| l.strip_prefix("herald-wrk "))
            .with_context(|| format!("no report line in wrk's output: {stdout}"))?;
        let n: Vec<u64> = line
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()
            .with_context(|| format!("wrk's report line: {line}"))?;
        let [requests, duration, status, socket, p50, p99, mean, max] = n[..] else {
            bail!("wrk's report line has {} fields: {line}", n.len());
        };
        let us = Duration::from_micros;
        let errors = status + socket;
        Ok(Measured {
            ok: requests.saturating_sub(status),
            errors,
            window: us(duration),
            p50: us(p50),
            p99: us(p99),
            mean: us(mean),
            max: us(max),
            first_error: (errors > 0).then(|| {
                format!("wrk: {status} answers other than 2xx/3xx, {socket} socket errors")
            }),
        })
    }
}

#[derive(Clone)]
struct PgTarget {
    host: String,
    port: u16,
    db: String,
    owner: String,
    /// The URL's `sslmode`, passed on so that pgbench's connections match the server's.
    sslmode: &'static str,
}

fn write_script(dir: &Path, name: &str, text: &str) -> anyhow::Result<PathBuf> {
    let path = dir.join(name);
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

#[derive(Default)]
struct PgbenchRun {
    tps: f64,
    latency_ms: f64,
    failed: u64,
    /// `pgbench -r`: (average latency in ms, statement).
    statements: Vec<(f64, String)>,
    cpu: CpuUse,
    /// CPU of pgbench's own backends over part of the run.
    backends: Option<BackendCpu>,
}

impl PgbenchRun {
    /// The per-statement latency of the contacts SELECT (runs with `-r` only). pgbench
    /// truncates long statements, so the SELECT is known by its first columns.
    fn select_ms(&self) -> Option<f64> {
        self.statements
            .iter()
            .find(|(_, sql)| sql.starts_with("SELECT id, tenant_id, name,"))
            .map(|(ms, _)| *ms)
    }
}

#[derive(Clone)]
struct Pgbench {
    conn: PgTarget,
    /// For finding pgbench's backends in `pg_stat_activity`.
    owner_pool: PgPool,
    dir: PathBuf,
    seconds: u64,
    /// `-D name=value`: the script's `:name` variables, sent as bind parameters.
    vars: Vec<(&'static str, String)>,
}

impl Pgbench {
    /// The same pgbench with runs of `seconds`.
    fn for_seconds(&self, seconds: u64) -> Pgbench {
        Pgbench {
            seconds,
            ..self.clone()
        }
    }

    /// Runs one pgbench; a failure is printed and the summary shows `n/a`.
    async fn stage(
        &self,
        name: &str,
        user: &str,
        script: &Path,
        clients: u32,
        per_statement: bool,
    ) -> Option<PgbenchRun> {
        eprintln!("contacts-list: pgbench {name}");
        match self.run(user, script, clients, per_statement).await {
            Ok(run) => Some(run),
            Err(e) => {
                eprintln!("contacts-list: pgbench {name} failed: {e:#}");
                None
            }
        }
    }

    async fn run(
        &self,
        user: &str,
        script: &Path,
        clients: u32,
        per_statement: bool,
    ) -> anyhow::Result<PgbenchRun> {
        let conn = &self.conn;
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
        let threads = clients.min(cpus).max(1);
        let mut cmd = tokio::process::Command::new("pgbench");
        cmd.current_dir(&self.dir)
            .env("PGSSLMODE", conn.sslmode)
            .args(["-n", "-M", "prepared"])
            .args(["-c", &clients.to_string(), "-j", &threads.to_string()])
            .args(["-T", &self.seconds.to_string()])
            .args(["-h", &conn.host, "-p", &conn.port.to_string(), "-U", user])
            .arg("-f")
            .arg(script);
        if per_statement {
            cmd.arg("-r");
        }
        for (name, value) in &self.vars {
            cmd.arg("-D").arg(format!("{name}={value}"));
        }
        cmd.arg(&conn.db);
        cmd.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let started = Instant::now();
        let cpu_from = Cpu::now();
        let child = cmd.spawn().context("running pgbench")?;
        // pgbench's backends exit with it; read their CPU while they run, from 1 s in to
        // shortly before the end.
        let mut backends = None;
        if self.seconds >= 3 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let b = Backends::of(&self.owner_pool, &conn.db, "pgbench").await;
            tokio::time::sleep_until(
                (started + Duration::from_secs(self.seconds) - Duration::from_millis(400)).into(),
            )
            .await;
            backends = Some(b.cpu_since_start());
        }
        let output = child.wait_with_output().await.context("running pgbench")?;
        let cpu = Cpu::now().since(&cpu_from);
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            bail!(
                "pgbench exited with {}: {}{}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim(),
                stdout.trim()
            );
        }
        let mut run =
            parse_pgbench(&stdout).with_context(|| format!("pgbench printed:\n{stdout}"))?;
        run.cpu = cpu;
        run.backends = backends;
        eprintln!(
            "contacts-list:   {:.0} tps, latency average {:.3} ms{}",
            run.tps,
            run.latency_ms,
            run.select_ms()
                .map(|ms| format!(", SELECT {ms:.3} ms"))
                .unwrap_or_default()
        );
        Ok(run)
    }
}

fn parse_pgbench(out: &str) -> anyhow::Result<PgbenchRun> {
    let mut run = PgbenchRun::default();
    let (mut tps, mut latency) = (None, None);
    let mut in_statements = false;
    for line in out.lines() {
        if let Some(rest) = line.strip_prefix("tps = ") {
            tps = rest.split_whitespace().next().and_then(|v| v.parse().ok());
        } else if let Some(rest) = line.strip_prefix("latency average = ") {
            latency = rest.split_whitespace().next().and_then(|v| v.parse().ok());
        } else if let Some(rest) = line.strip_prefix("number of failed transactions: ") {
            run.failed = rest
                .split_whitespace()
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
        } else if line.starts_with("statement latencies") {
            in_statements = true;
        } else if in_statements && line.starts_with(char::is_whitespace) {
            // "   0.412   0  SELECT ..." (PostgreSQL 15: latency, failures, statement).
            let trimmed = line.trim_start();
            let (latency, rest) = trimmed
                .split_once(char::is_whitespace)
                .unwrap_or((trimmed, ""));
            let rest = rest.trim_start();
            let statement = match rest.split_once(char::is_whitespace) {
                Some((n, s)) if n.parse::<u64>().is_ok() => s.trim(),
                _ => rest,
            };
            if let Ok(ms) = latency.parse() {
                run.statements.push((ms, statement.to_owned()));
            }
        } else {
            in_statements = false;
        }
    }
    run.tps = tps.context("no `tps = ` line")?;
    run.latency_ms = latency.context("no `latency average = ` line")?;
    Ok(run)
}

/// CPU time, from /proc: this process's threads by name (`server`, `load`), every
/// `postgres` process on the machine, finished children (pgbench), and the machine.
#[derive(Clone, Copy, Default)]
struct Cpu {
    at: Option<Instant>,
    server: Duration,
    load: Duration,
    postgres: Duration,
    children: Duration,
    machine_busy: Duration,
}

/// CPU used between two [`Cpu`] readings.
#[derive(Clone, Copy, Default)]
struct CpuUse {
    wall: Duration,
    server: Duration,
    load: Duration,
    postgres: Duration,
    children: Duration,
    machine_busy: Duration,
}

impl std::iter::Sum for CpuUse {
    fn sum<I: Iterator<Item = CpuUse>>(uses: I) -> CpuUse {
        uses.fold(CpuUse::default(), |a, b| CpuUse {
            wall: a.wall + b.wall,
            server: a.server + b.server,
            load: a.load + b.load,
            postgres: a.postgres + b.postgres,
            children: a.children + b.children,
            machine_busy: a.machine_busy + b.machine_busy,
        })
    }
}

impl CpuUse {
    /// CPU used by anything but the server and load threads, PostgreSQL and pgbench
    /// (includes this process's other threads, e.g. the main thread).
    fn other(&self) -> Duration {
        self.machine_busy
            .saturating_sub(self.server + self.load + self.postgres + self.children)
    }

    /// `d` as a percentage of one core over the window.
    fn share(&self, d: Duration) -> f64 {
        if self.wall.is_zero() {
            return 0.0;
        }
        100.0 * d.as_secs_f64() / self.wall.as_secs_f64()
    }
}

fn per_op_us(d: Duration, ops: u64) -> f64 {
    if ops == 0 {
        return 0.0;
    }
    d.as_secs_f64() * 1e6 / ops as f64
}

impl Cpu {
    fn now() -> Cpu {
        let tick = clock_tick();
        let mut cpu = Cpu {
            at: Some(Instant::now()),
            ..Cpu::default()
        };
        if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
            for task in tasks.flatten() {
                if let Some((comm, ticks, _)) = proc_stat(&task.path().join("stat")) {
                    let t = tick * ticks as u32;
                    if comm.starts_with("server") {
                        cpu.server += t;
                    } else if comm.starts_with("load") {
                        cpu.load += t;
                    }
                }
            }
        }
        if let Ok(procs) = std::fs::read_dir("/proc") {
            for p in procs.flatten() {
                if !p
                    .file_name()
                    .to_string_lossy()
                    .bytes()
                    .all(|b| b.is_ascii_digit())
                {
                    continue;
                }
                if let Some((comm, own, children)) = proc_stat(&p.path().join("stat"))
                    && comm == "postgres"
                {
                    cpu.postgres += tick * (own + children) as u32;
                }
            }
        }
        // SAFETY: getrusage fills the struct it is given.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        if unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) } == 0 {
            let tv = |t: libc::timeval| {
                Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
            };
            cpu.children = tv(usage.ru_utime) + tv(usage.ru_stime);
        }
        if let Ok(stat) = std::fs::read_to_string("/proc/stat")
            && let Some(line) = stat.lines().next()
        {
            // cpu user nice system idle iowait irq softirq steal ...
            let busy: u64 = line
                .split_whitespace()
                .skip(1)
                .take(8)
                .enumerate()
                .filter(|(i, _)| *i != 3 && *i != 4)
                .filter_map(|(_, x)| x.parse::<u64>().ok())
                .sum();
            cpu.machine_busy = tick * busy as u32;
        }
        cpu
    }

    fn since(&self, earlier: &Cpu) -> CpuUse {
        CpuUse {
            wall: match (self.at, earlier.at) {
                (Some(a), Some(b)) => a - b,
                _ => Duration::ZERO,
            },
            server: self.server.saturating_sub(earlier.server),
            load: self.load.saturating_sub(earlier.load),
            postgres: self.postgres.saturating_sub(earlier.postgres),
            children: self.children.saturating_sub(earlier.children),
            machine_busy: self.machine_busy.saturating_sub(earlier.machine_busy),
        }
    }
}

/// Some PostgreSQL backends of the bench database, found by `application_name`, and their
/// CPU time when found. Unlike [`Cpu::postgres`] this leaves out other databases' work.
struct Backends {
    pids: Vec<i32>,
    at: Instant,
    cpu: Duration,
}

/// CPU time of a set of backends over a window.
#[derive(Clone, Copy)]
struct BackendCpu {
    count: usize,
    wall: Duration,
    cpu: Duration,
}

impl BackendCpu {
    /// Cores busy on average, e.g. 1.2.
    fn cores(&self) -> f64 {
        if self.wall.is_zero() {
            return 0.0;
        }
        self.cpu.as_secs_f64() / self.wall.as_secs_f64()
    }
}

impl Backends {
    /// The backends of `db` named `application`. Inside a transaction the server's are named
    /// `req=<request id> <application>` (see `app.enter_tenant`): matching the plain name
    /// alone missed every backend that was busy at the moment of asking.
    async fn of(pool: &PgPool, db: &str, application: &str) -> Backends {
        let pids: Vec<i32> = sqlx::query_scalar(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1
               AND (application_name = $2 OR application_name LIKE 'req=% ' || $2)",
        )
        .bind(db)
        .bind(application)
        .fetch_all(pool)
        .await
        .unwrap_or_default();
        let cpu = Backends::read(&pids);
        Backends {
            pids,
            at: Instant::now(),
            cpu,
        }
    }

    fn read(pids: &[i32]) -> Duration {
        let tick = clock_tick();
        pids.iter()
            .filter_map(|pid| proc_stat(Path::new(&format!("/proc/{pid}/stat"))))
            .map(|(_, own, _)| tick * own as u32)
            .sum()
    }

    fn cpu_since_start(&self) -> BackendCpu {
        BackendCpu {
            count: self.pids.len(),
            wall: self.at.elapsed(),
            cpu: Backends::read(&self.pids).saturating_sub(self.cpu),
        }
    }
}

fn clock_tick() -> Duration {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    Duration::from_secs(1) / u32::try_from(hz).ok().filter(|&h| h > 0).unwrap_or(100)
}

/// A process's or thread's name, its user + system time, and that of its children that
/// have exited and been waited for, in clock ticks. For the postmaster the latter is the
/// backends that have ended (pgbench's), which a reading of live processes would miss.
fn proc_stat(path: &Path) -> Option<(String, u64, u64)> {
    let text = std::fs::read_to_string(path).ok()?;
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text[open + 1..close].to_owned();
    // After the name: state (field 3) ... utime (14), stime (15), cutime (16), cstime (17).
    let fields: Vec<&str> = text[close + 1..].split_whitespace().collect();
    let field = |i: usize| fields.get(i)?.parse::<u64>().ok();
    Some((comm, field(11)? + field(12)?, field(13)? + field(14)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pgbench_15() {
        let out = "pgbench (15.20 (Debian 15.20-0+deb12u1))
transaction type: /tmp/x/set_config.sql
scaling factor: 1
query mode: prepared
number of clients: 1
number of threads: 1
maximum number of tries: 1
duration: 10 s
number of transactions actually processed: 12345
number of failed transactions: 0 (0.000%)
latency average = 0.810 ms
initial connection time = 3.021 ms
tps = 1234.567890 (without initial connection time)
statement latencies in milliseconds and failures:
         0.050           0  BEGIN;
         0.060           0  SELECT set_config('app.tenant_id', :tenant, true);
         0.412           0  SELECT id, tenant_id, name, phone, email, attributes, opted_out_at, (opted_out_at IS NOT NULL) AS opted_out, created_at, updated_at, deleted_at FROM contacts WHER
         0.040           0  COMMIT;
";
        let run = parse_pgbench(out).unwrap();
        assert_eq!(run.tps, 1234.56789);
        assert_eq!(run.latency_ms, 0.81);
        assert_eq!(run.statements.len(), 4);
        assert_eq!(run.select_ms(), Some(0.412));
        assert_eq!(run.statements[0].1, "BEGIN;");
    }
}
