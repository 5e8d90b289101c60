//! Metrics: the query counter sees every statement, every EMF line a run writes is well
//! formed, the request id reaches PostgreSQL, slow queries are logged and kept with it.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::time::Duration;

use herald::metrics::{self, Class, Invocation, Record};
use herald_tests::{TestApp, eventually, read};
use reqwest::Method;
use serde_json::Value;

#[tokio::test]
async fn the_query_layer_counts_statements_and_time() {
    herald::telemetry::init();
    let app = TestApp::spawn().await;
    let ((), invocation) = metrics::measure(async {
        for _ in 0..3 {
            sqlx::query("SELECT pg_sleep(0.01)")
                .execute(&app.owner)
                .await
                .unwrap();
        }
    })
    .await;
    assert_eq!(invocation.db_queries, 3);
    assert!(
        invocation.db_time >= Duration::from_millis(30),
        "{:?}",
        invocation.db_time
    );
}

#[test]
fn emf_records_follow_the_specification() {
    let invocation = Invocation {
        db_time: Duration::from_millis(3),
        db_queries: 4,
        tenant_id: Some(uuid::Uuid::now_v7()),
        ..Invocation::default()
    };
    let record = Record {
        function: "contacts",
        route: "GET /api/contacts",
        request_id: "abc",
        status: Some(404),
        class: Class::ClientError,
        latency: Duration::from_millis(12),
        cold_start: true,
        max_rss_kb: 2048,
        invocation: &invocation,
    }
    .to_emf(1_795_000_000_000);

    check_emf(&record);
    assert_eq!(record["_aws"]["Timestamp"], 1_795_000_000_000u64);
    assert_eq!(record["ClientErrors"], 1);
    assert_eq!(record["ServerErrors"], 0);
    assert_eq!(record["Errors"], 1);
    assert_eq!(record["ColdStart"], 1);
    assert_eq!(record["DbQueries"], 4);
    assert_eq!(record["MaxRss"], 2048);
    // The tenant is a property, never a dimension.
    assert!(record["tenantId"].is_string());
    assert!(
        !record["_aws"]["CloudWatchMetrics"][0]["Dimensions"]
            .to_string()
            .contains("tenant")
    );
}

#[tokio::test]
async fn statements_over_the_threshold_are_counted_slow() {
    herald::telemetry::init();
    let app = TestApp::spawn().await;
    let tenant = app.tenant("alice").await;
    let db = herald::db::Database::connect_lazy(
        &app.app_role_url(),
        1,
        Duration::from_millis(50),
        "test",
    )
    .unwrap()
    .noting_tenants_with(metrics::note_tenant);

    let ((), invocation) = metrics::measure(async {
        let mut tx = db
            .begin_tenant(tenant, "alice", "test")
            .await
            .unwrap()
            .unwrap();
        sqlx::query("SELECT pg_sleep(0.001)")
            .execute(tx.conn())
            .await
            .unwrap();
        sqlx::query("SELECT pg_sleep(0.08)")
            .execute(tx.conn())
            .await
            .unwrap();
        tx.commit().await.unwrap();
        // Herald's own transactions tell the invocation their tenant through the hook;
        // a caller's are noted by `App` (see the EMF test above).
        db.begin_service(tenant, "test")
            .await
            .unwrap()
            .commit()
            .await
            .unwrap();
    })
    .await;
    // At least the long sleep (on a loaded machine other statements may cross 50 ms too).
    assert!(invocation.slow_queries >= 1, "{invocation:?}");
    assert!(
        invocation.slow.iter().any(|s| s.statement == "SELECT pg_sleep(?)"
            && s.duration >= Duration::from_millis(80)),
        "{invocation:?}"
    );
    assert!(
        invocation.db_queries >= 4,
        "BEGIN, enter_tenant, two sleeps, COMMIT: {invocation:?}"
    );
    assert_eq!(invocation.tenant_id, Some(tenant));
}

/// Everything the process writes to fd 1 from `start` to `finish` (each test runs in a
/// process of its own under nextest, so nothing else writes there meanwhile).
struct StdoutCapture {
    saved: File,
    path: std::path::PathBuf,
}

impl StdoutCapture {
    fn start() -> StdoutCapture {
        std::io::stdout().flush().unwrap();
        let path = std::env::temp_dir().join(format!("herald-stdout-{}.log", uuid::Uuid::new_v4()));
        let target = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap();
        // SAFETY: dup/dup2 on descriptors this process owns; the duplicate becomes a File.
        let saved = unsafe { libc::dup(1) };
        assert!(saved >= 0);
        let saved = unsafe { File::from_raw_fd(saved) };
        assert!(unsafe { libc::dup2(target.as_raw_fd(), 1) } >= 0);
        StdoutCapture { saved, path }
    }

    fn finish(self) -> String {
        std::io::stdout().flush().unwrap();
        assert!(unsafe { libc::dup2(self.saved.as_raw_fd(), 1) } >= 0);
        let mut text = String::new();
        File::open(&self.path)
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        let _ = std::fs::remove_file(&self.path);
        text
    }
}

/// CloudWatch's rules for an EMF document
/// (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html).
fn check_emf(doc: &Value) {
    const UNITS: &[&str] = &[
        "Seconds",
        "Microseconds",
        "Milliseconds",
        "Bytes",
        "Kilobytes",
        "Megabytes",
        "Gigabytes",
        "Terabytes",
        "Bits",
        "Kilobits",
        "Megabits",
        "Gigabits",
        "Terabits",
        "Percent",
        "Count",
        "Bytes/Second",
        "Kilobytes/Second",
        "Megabytes/Second",
        "Gigabytes/Second",
        "Terabytes/Second",
        "Bits/Second",
        "Kilobits/Second",
        "Megabits/Second",
        "Gigabits/Second",
        "Terabits/Second",
        "Count/Second",
        "None",
    ];
    let aws = doc["_aws"].as_object().expect("an _aws object");
    assert!(aws["Timestamp"].is_u64(), "Timestamp: {doc}");
    let directives = aws["CloudWatchMetrics"]
        .as_array()
        .expect("CloudWatchMetrics");
    assert!(!directives.is_empty());
    for directive in directives {
        let namespace = directive["Namespace"].as_str().expect("Namespace");
        assert!((1..=255).contains(&namespace.len()));
        let dimension_sets = directive["Dimensions"].as_array().expect("Dimensions");
        for set in dimension_sets {
            let set = set.as_array().expect("a dimension set is an array");
            assert!(set.len() <= 30, "at most 30 dimensions: {doc}");
            for name in set {
                let name = name.as_str().expect("dimension names are strings");
                assert!(
                    doc[name].is_string(),
                    "dimension {name} has no string value: {doc}"
                );
            }
        }
        let metrics = directive["Metrics"].as_array().expect("Metrics");
        assert!(metrics.len() <= 100, "at most 100 metrics: {doc}");
        for metric in metrics {
            let name = metric["Name"].as_str().expect("metric Name");
            assert!((1..=255).contains(&name.len()));
            if let Some(unit) = metric.get("Unit") {
                assert!(UNITS.contains(&unit.as_str().unwrap()), "unit {unit}");
            }
            if let Some(res) = metric.get("StorageResolution") {
                assert!(res == 1 || res == 60);
            }
            match &doc[name] {
                Value::Number(_) => {}
                Value::Array(values) => {
                    assert!(values.len() <= 100 && values.iter().all(Value::is_number))
                }
                other => panic!("metric {name} is {other}, not a number: {doc}"),
            }
        }
    }
}

#[tokio::test]
async fn every_emf_line_a_run_writes_follows_the_specification() {
    let capture = StdoutCapture::start();
    herald::telemetry::init();
    let app = TestApp::spawn_config(|c| c.observer.rate_limit_per_minute = 2).await;
    let tenant = app.tenant("alice").await;
    let alice = app.user("alice", tenant);
    let stranger = app.user("mallory", tenant);

    let mut request_ids = Vec::new();
    let mut statuses = Vec::new();
    for reply in [
        alice.get("/api/contacts").await,                          // 200
        alice.post("/api/contacts", &serde_json::json!({})).await, // 422
        alice.get("/api/contacts").await,                          // 429 (limit 2)
        stranger.get("/api/contacts").await,                       // 403
        read(
            app.request(Method::GET, "/api/contacts")
                .send()
                .await
                .unwrap(),
        )
        .await, // 401
        read(app.request(Method::GET, "/nowhere").send().await.unwrap()).await, // 404
        read(app.request(Method::GET, "/health").send().await.unwrap()).await, // 200
    ] {
        request_ids.push(reply.headers["x-request-id"].to_str().unwrap().to_owned());
        statuses.push(reply.status.as_u16());
    }
    assert_eq!(statuses, [200, 422, 429, 403, 401, 404, 200]);
    // A function that is not HTTP, failing.
    let out: Result<(), &str> =
        metrics::instrument("scheduler", "tick", "job-1", async { Err("no database") }).await;
    assert!(out.is_err());
    let output = capture.finish();

    let mut emf = Vec::new();
    let mut finished = Vec::new();
    for line in output.lines().filter(|l| !l.trim().is_empty()) {
        let doc: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line}"));
        if doc.get("_aws").is_some() {
            check_emf(&doc);
            emf.push(doc);
        } else if doc["message"] == "invocation finished" {
            // Log lines of an invocation carry its request id.
            assert!(doc["span"]["request_id"].is_string(), "{doc}");
            assert_eq!(doc["level"], "INFO", "{doc}");
            assert_eq!(doc["target"], "herald::metrics", "{doc}");
            finished.push(doc);
        }
    }
    // The first request's line: its request id, route and status, and the tenant it entered.
    let line = finished
        .iter()
        .find(|d| d["span"]["request_id"] == request_ids[0].as_str())
        .unwrap_or_else(|| panic!("no log line for request {}", request_ids[0]));
    assert_eq!(line["span"]["tenant_id"], tenant.to_string(), "{line}");
    assert_eq!(line["span"]["function"], "contacts", "{line}");
    assert_eq!(line["span"]["route"], "GET /api/contacts", "{line}");
    assert_eq!(line["status"], 200, "{line}");
    assert!(line["db_queries"].as_u64().unwrap() >= 2, "{line}");
    assert!(
        time::OffsetDateTime::parse(
            line["timestamp"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339
        )
        .is_ok(),
        "{line}"
    );
    // The 401 never learned its tenant, and its line says none.
    let line = finished
        .iter()
        .find(|d| d["span"]["request_id"] == request_ids[4].as_str())
        .unwrap_or_else(|| panic!("no log line for request {}", request_ids[4]));
    assert!(line["span"].get("tenant_id").is_none(), "{line}");
    // Exactly one line per invocation (background workers of herald-local may add their own).
    for id in request_ids.iter().map(String::as_str).chain(["job-1"]) {
        let lines = emf.iter().filter(|d| d["requestId"] == id).count();
        assert_eq!(lines, 1, "EMF lines for {id}");
    }
    for (id, status) in request_ids.iter().zip(&statuses) {
        let doc = emf
            .iter()
            .find(|d| d["requestId"] == id.as_str())
            .unwrap_or_else(|| panic!("no EMF line for request {id}"));
        assert_eq!(doc["statusCode"], *status);
        assert_eq!(doc["ClientErrors"], u8::from((400..500).contains(status)));
        assert_eq!(doc["Errors"], u8::from(*status >= 400));
        assert!(doc["MaxRss"].as_u64().unwrap() > 0);
    }
    // Requests inside the tenant name it; the others cannot.
    let first = emf
        .iter()
        .find(|d| d["requestId"] == request_ids[0].as_str())
        .unwrap();
    assert_eq!(first["tenantId"], tenant.to_string());
    assert_eq!(first["function"], "contacts");
    assert_eq!(first["route"], "GET /api/contacts");
    let job = emf.iter().find(|d| d["requestId"] == "job-1").unwrap();
    assert_eq!(job["function"], "scheduler");
    assert_eq!(job["ServerErrors"], 1);
    assert_eq!(emf.iter().filter(|d| d["ColdStart"] == 1).count(), 1);
}

#[tokio::test]
async fn a_slow_query_is_tied_to_its_request_in_postgres_the_log_and_the_stats() {
    let capture = StdoutCapture::start();
    herald::telemetry::init();
    let app = TestApp::spawn_config(|c| c.slow_query = Duration::from_millis(100)).await;
    let tenant = app.tenant("alice").await;
    let alice = app.user("alice", tenant);

    // Hold the contacts table so that the request's SELECT waits inside its transaction.
    let mut lock = app.owner.begin().await.unwrap();
    sqlx::query("LOCK TABLE contacts IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .unwrap();
    let request = alice.request(Method::GET, "/api/contacts").send();
    let pending = tokio::spawn(request);

    // The waiting backend, named after the request, and waiting longer than SLOW_QUERY_MS.
    let found = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    eventually(Duration::from_secs(10), || {
        let owner = app.owner.clone();
        let db = app.db_name.clone();
        let found = std::sync::Arc::clone(&found);
        async move {
            let row: Option<String> = sqlx::query_scalar(
                "SELECT application_name FROM pg_stat_activity
                 WHERE datname = $1 AND wait_event_type = 'Lock'
                   AND now() - query_start > interval '150 milliseconds'",
            )
            .bind(db)
            .fetch_optional(&owner)
            .await
            .unwrap();
            row.map(|name| *found.lock().unwrap() = name).is_some()
        }
    })
    .await;
    lock.rollback().await.unwrap();
    let application_name = found.lock().unwrap().clone();

    let reply = read(pending.await.unwrap().unwrap()).await;
    reply.ok(200);
    let request_id = reply.headers["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(
        application_name,
        format!("req={request_id} herald-local"),
        "the transaction's application_name names the request"
    );

    // The name was the transaction's only: pooled connections are back to their own.
    let leaked: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity
         WHERE datname = $1 AND state = 'idle' AND application_name LIKE 'req=%'",
    )
    .bind(&app.db_name)
    .fetch_one(&app.owner)
    .await
    .unwrap();
    assert_eq!(leaked, 0);

    let stats = alice.get("/api/performance/stats?minutes=5").await;
    let stats = stats.ok(200);
    let slow = stats["database"]["slowQueries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["requestId"] == request_id.as_str())
        .unwrap_or_else(|| panic!("no slow query of {request_id}: {stats}"));
    assert!(slow["durationMs"].as_f64().unwrap() >= 100.0, "{slow}");
    let statement = slow["statement"].as_str().unwrap();
    assert!(statement.contains("FROM contacts"), "{statement}");
    assert!(!statement.contains(&tenant.to_string()), "{statement}");
    assert!(stats["database"]["slowQueryCount"].as_i64().unwrap() >= 1);
    let output = capture.finish();

    // sqlx's warning, written inside the request's span.
    let logged = output.lines().any(|line| {
        serde_json::from_str::<Value>(line).is_ok_and(|doc| {
            doc["target"] == "sqlx::query"
                && doc["level"] == "WARN"
                && doc["span"]["request_id"] == request_id.as_str()
        })
    });
    assert!(
        logged,
        "no slow-statement warning with request id {request_id}"
    );
}
