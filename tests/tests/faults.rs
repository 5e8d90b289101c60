//! Database faults: PostgreSQL crashing and restarting under a write load, and an exhausted
//! pool. Requests during the outage get 503 problem+json with `Retry-After`; the server
//! recovers by itself; clients that retry with their `Idempotency-Key` end with every write
//! committed exactly once.
//!
//! These tests run against a private PostgreSQL ([`Cluster`]), never the shared one.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use herald_tests::cluster::Cluster;
use herald_tests::{TestApp, eventually, read};
use reqwest::Method;
use serde_json::json;
use tokio::io::AsyncWriteExt;

const WORKERS: usize = 8;
const PER_WORKER: usize = 40;
const DEADLINE: Duration = Duration::from_secs(120);

/// What the clients saw, by status (and for 503s, whether they were well formed).
#[derive(Default)]
struct Seen {
    statuses: BTreeMap<u16, usize>,
    malformed_503: Vec<String>,
    /// Keys whose work committed but whose response was lost with the database.
    unrecorded: usize,
    transport_errors: usize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarting_mid_load_loses_and_doubles_nothing() {
    let pg = Cluster::start().await;
    let app = TestApp::spawn_on(&pg.url(), |c| {
        // Requests the crash interrupts hold their keys this long; shortened so that the
        // test's clients need not wait the production minute.
        c.idempotency_lease = Duration::from_secs(2);
    })
    .await;
    let tenant = app.tenant("alice").await;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let created = Arc::new(std::sync::atomic::AtomicUsize::new(0));

    let mut workers = Vec::new();
    for w in 0..WORKERS {
        let (http, base, seen, created) = (
            app.http.clone(),
            app.base.clone(),
            Arc::clone(&seen),
            Arc::clone(&created),
        );
        let token = herald_tests::token("alice", None, 3600);
        workers.push(tokio::spawn(async move {
            for i in 0..PER_WORKER {
                let body = json!({
                    "name": format!("w{w} c{i}"),
                    "phone": format!("+1415555{:04}", w * 1000 + i),
                });
                let started = Instant::now();
                // Like any careful client: retry what the server says to retry, with the
                // same key, until it answers.
                loop {
                    assert!(started.elapsed() < DEADLINE, "w{w} c{i} never succeeded");
                    let sent = http
                        .post(format!("{base}/api/contacts"))
                        .bearer_auth(&token)
                        .header("X-Tenant-ID", tenant.to_string())
                        .header("Idempotency-Key", format!("w{w}-c{i}"))
                        .json(&body)
                        .timeout(Duration::from_secs(30))
                        .send()
                        .await;
                    let reply = match sent {
                        Ok(r) => read(r).await,
                        Err(_) => {
                            seen.lock().unwrap().transport_errors += 1;
                            continue;
                        }
                    };
                    let status = reply.status.as_u16();
                    *seen.lock().unwrap().statuses.entry(status).or_default() += 1;
                    match status {
                        201 => break,
                        409 if reply.json["detail"]
                            .as_str()
                            .is_some_and(|d| d.contains("completed")) =>
                        {
                            seen.lock().unwrap().unrecorded += 1;
                            break;
                        }
                        409 | 503 => {
                            let retry_after = reply
                                .headers
                                .get("retry-after")
                                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
                            let problem = reply.content_type() == "application/problem+json";
                            if status == 503 && (retry_after.is_none() || !problem) {
                                seen.lock()
                                    .unwrap()
                                    .malformed_503
                                    .push(reply.json.to_string());
                            }
                            // Honouring Retry-After is the client's side of the contract.
                            tokio::time::sleep(Duration::from_secs(retry_after.unwrap_or(1))).await;
                        }
                        other => panic!("unexpected {other}: {}", reply.json),
                    }
                }
                created.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }));
    }

    // Crash the database a quarter of the way in, keep it down until clients have seen it,
    // then bring it back.
    let total = WORKERS * PER_WORKER;
    eventually(DEADLINE, || async {
        created.load(std::sync::atomic::Ordering::SeqCst) >= total / 4
    })
    .await;
    pg.crash().await;
    eventually(DEADLINE, || async {
        seen.lock()
            .unwrap()
            .statuses
            .get(&503)
            .is_some_and(|n| *n >= 3)
    })
    .await;
    pg.resume().await;
    for worker in workers {
        worker.await.expect("worker finished");
    }

    let seen = std::mem::take(&mut *seen.lock().unwrap());
    assert!(
        seen.malformed_503.is_empty(),
        "503s without Retry-After or problem+json: {:?}",
        seen.malformed_503
    );
    let server_errors: Vec<_> = seen
        .statuses
        .iter()
        .filter(|(s, _)| **s >= 500 && **s != 503)
        .collect();
    assert!(
        server_errors.is_empty(),
        "only 503 during the outage: {:?}",
        seen.statuses
    );

    // Every write committed once: no contact lost, none doubled, one event each.
    let owner = sqlx::PgPool::connect(&app.owner_url).await.unwrap();
    let (rows, phones): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(DISTINCT phone) FROM contacts WHERE tenant_id = $1")
            .bind(tenant)
            .fetch_one(&owner)
            .await
            .unwrap();
    assert_eq!(rows, total as i64, "statuses: {:?}", seen.statuses);
    assert_eq!(phones, total as i64);
    let events: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM outbox_events WHERE tenant_id = $1 AND type = 'contact_created'",
    )
    .bind(tenant)
    .fetch_one(&owner)
    .await
    .unwrap();
    assert_eq!(events, total as i64);
    eprintln!(
        "statuses {:?}, unrecorded {}, transport errors {}",
        seen.statuses, seen.unrecorded, seen.transport_errors
    );
}

/// With every pooled connection taken, a request waits the pool's acquire timeout and is
/// answered 503 with `Retry-After`, rather than hanging until API Gateway gives up.
#[tokio::test]
async fn an_exhausted_pool_answers_503_quickly() {
    let app = TestApp::spawn_config(|c| {
        c.db_max_connections = 2;
        c.run_sender = true;
    })
    .await;
    let tenant = app.tenant("alice").await;
    let alice = app.user("alice", tenant);
    alice.get("/api/contacts").await.ok(200);

    // Take every connection of the server's pool, as requests stuck on a slow query would:
    // until none has come free for a second (background loops hold theirs only briefly).
    let pool = app.db.pool();
    let mut taken = Vec::new();
    while let Ok(conn) = tokio::time::timeout(Duration::from_secs(1), pool.acquire()).await {
        taken.push(conn.unwrap());
    }
    // Every connection was there to take: the LISTENs of the webhook deliverer and the
    // sender hold connections of their own, not the requests'.
    assert_eq!(taken.len(), 2);

    let reply = alice
        .send(
            alice
                .request(Method::GET, "/api/contacts")
                .timeout(Duration::from_secs(10)),
        )
        .await;
    reply.problem(503);
    assert_eq!(reply.headers["retry-after"], "1");

    drop(taken);
    alice.get("/api/contacts").await.ok(200);
}

/// A client that hangs up does not stop its invocation, as in AWS. Stopped wherever it
/// stood instead, a request caught while its `BEGIN` was on the wire would leave its pooled
/// session inside a transaction that sqlx 0.9 does not know of; the pool would lend that
/// session to the next borrower, whose statements would run, and fail, inside it
/// (transact-rs/sqlx#4393). The clients reset their connections (as a load generator that
/// exits does) at moments spread over the first 3 ms, from auth to commit, each followed by
/// a write.
#[tokio::test]
async fn clients_hanging_up_mid_request_leave_every_session_clean() {
    let app = TestApp::spawn_config(|c| c.db_max_connections = 1).await;
    let tenant = app.tenant("alice").await;
    let alice = app.user("alice", tenant);
    alice.get("/api/contacts").await.ok(200);

    let addr = app.base.trim_start_matches("http://").to_owned();
    let request = format!(
        "GET /api/contacts HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\
         X-Tenant-ID: {tenant}\r\n\r\n",
        alice.token
    );
    // One pooled connection: the write after each hang-up gets the session the abandoned
    // read had, and a read-only transaction left open on it would refuse the write.
    for i in 0..150u64 {
        let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
        tcp.write_all(request.as_bytes()).await.unwrap();
        tokio::time::sleep(Duration::from_micros(i * 20)).await;
        // Closed with SO_LINGER 0: a reset, as from a load generator that exits.
        tcp.set_zero_linger().unwrap();
        drop(tcp);
        alice
            .post(
                "/api/contacts",
                &json!({ "name": format!("After {i}"), "email": format!("after{i}@example.com") }),
            )
            .await
            .ok(201);
    }

    // Once the abandoned invocations have finished, no session of the app role sits in a
    // transaction...
    let owner = app.owner.clone();
    eventually(Duration::from_secs(20), || {
        let owner = owner.clone();
        async move {
            let stuck: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND usename = 'herald_app'
                   AND state LIKE 'idle in transaction%'",
            )
            .fetch_one(&owner)
            .await
            .unwrap();
            stuck == 0
        }
    })
    .await;
    // ...and the session still reads.
    alice.get("/api/contacts").await.ok(200);
}
