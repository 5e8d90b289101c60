//! `GET /api/performance/stats` across instances, and per-tenant rate limits.

use std::sync::Arc;
use std::time::Duration;

use herald_tests::{TestApp, eventually};
use serde_json::Value;

fn quick_flush(c: &mut herald_local::server::ServerConfig) {
    c.observer.flush_every = Duration::from_millis(50);
}

fn route<'a>(stats: &'a Value, key: &str) -> Option<&'a Value> {
    stats["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["route"] == key)
}

#[tokio::test]
async fn stats_from_two_servers_on_one_database_add_up() {
    // As every function's main does: the subscriber whose layer counts statements.
    herald::telemetry::init();
    let one = TestApp::spawn_config(quick_flush).await;
    let two = one.second_server(quick_flush).await;
    let tenant = one.tenant("alice").await;
    let other = one.tenant("bob").await;

    for _ in 0..3 {
        one.user("alice", tenant).get("/api/contacts").await.ok(200);
    }
    for _ in 0..2 {
        two.user("alice", tenant).get("/api/contacts").await.ok(200);
    }
    let missing = format!("/api/contacts/{}", uuid::Uuid::now_v7());
    two.user("alice", tenant).get(&missing).await.problem(404);
    // Another tenant's traffic stays out of alice's figures.
    one.user("bob", other).get("/api/contacts").await.ok(200);

    for app in [&one, &two] {
        let alice = app.user("alice", tenant);
        let added_up = |stats: &Value| {
            route(stats, "GET /api/contacts").is_some_and(|r| r["requests"] == 3 + 2)
                && route(stats, "GET /api/contacts/{id}").is_some_and(|r| r["requests"] == 1)
        };
        eventually(Duration::from_secs(10), || {
            let alice = &alice;
            async move {
                let stats = alice.get("/api/performance/stats?minutes=10").await;
                added_up(stats.ok(200))
            }
        })
        .await;
        let last = alice
            .get("/api/performance/stats?minutes=10")
            .await
            .ok(200)
            .clone();
        assert!(added_up(&last), "{last}");
        let list = route(&last, "GET /api/contacts").unwrap();
        assert_eq!(list["function"], "contacts");
        assert_eq!(list["clientErrors"], 0);
        // app.enter_tenant and the SELECT, per request (sqlx does not log `BEGIN`, and a
        // read's transaction ends after the response; see TenantTx::commit).
        assert!(list["queries"].as_i64().unwrap() >= 5 * 2, "{list}");
        assert!(list["dbTimeMs"].as_f64().unwrap() > 0.0);
        let (p50, p95, p99) = (
            list["latencyMs"]["p50"].as_f64().unwrap(),
            list["latencyMs"]["p95"].as_f64().unwrap(),
            list["latencyMs"]["p99"].as_f64().unwrap(),
        );
        assert!(0.0 < p50 && p50 <= p95 && p95 <= p99, "{list}");
        assert!(p99 <= list["latencyMs"]["max"].as_f64().unwrap());
        let get = route(&last, "GET /api/contacts/{id}").unwrap();
        assert_eq!(get["clientErrors"], 1);
        assert_eq!(get["errorRate"], 1.0);
        assert_eq!(last["tenantId"], tenant.to_string());
        assert!(last["requests"].as_i64().unwrap() >= 6);
        assert!(last["clientErrors"].as_i64().unwrap() >= 1);
        assert!(last["database"]["queries"].as_i64().unwrap() > 0);
    }
    // Bob's one request is his alone.
    let bob = one.user("bob", other).get("/api/performance/stats").await;
    assert_eq!(
        route(bob.ok(200), "GET /api/contacts").unwrap()["requests"],
        1
    );
}

#[tokio::test]
async fn stats_are_for_owners_and_admins_and_check_their_window() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("alice").await;
    app.add_member(tenant, "ann", "admin").await;
    app.add_member(tenant, "mel", "member").await;
    app.add_member(tenant, "vic", "viewer").await;

    app.user("ann", tenant)
        .get("/api/performance/stats")
        .await
        .ok(200);
    app.user("mel", tenant)
        .get("/api/performance/stats")
        .await
        .problem(403);
    app.user("vic", tenant)
        .get("/api/performance/stats")
        .await
        .problem(403);
    app.user("eve", tenant)
        .get("/api/performance/stats")
        .await
        .problem(403);
    let alice = app.user("alice", tenant);
    let stats = alice.get("/api/performance/stats").await;
    assert_eq!(stats.ok(200)["windowMinutes"], 60);
    for bad in ["0", "1441", "abc", "-5", "2.5"] {
        let reply = alice
            .get(&format!("/api/performance/stats?minutes={bad}"))
            .await;
        assert_eq!(reply.problem(422)["errors"][0]["pointer"], "/minutes");
    }
    assert_eq!(
        alice
            .get("/api/performance/stats?minutes=1440")
            .await
            .ok(200)["windowMinutes"],
        1440
    );
}

fn header(reply: &herald_tests::Reply, name: &str) -> u64 {
    reply.headers[name].to_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_tenant_over_its_limit_gets_429_and_another_does_not() {
    let app = TestApp::spawn_config(|c| c.observer.rate_limit_per_minute = 1000).await;
    let two = app.second_server(|_| {}).await;
    let busy = app.tenant("alice").await;
    let calm = app.tenant("bob").await;
    sqlx::query("UPDATE tenants SET rate_limit_per_minute = 3 WHERE id = $1")
        .bind(busy)
        .execute(&app.owner)
        .await
        .unwrap();
    let alice = app.user("alice", busy);

    // Up to the limit, then refused (a minute turning over midway restarts the count once).
    let mut refused = None;
    for _ in 0..7 {
        let reply = alice.get("/api/contacts").await;
        if reply.status == 429 {
            refused = Some(reply);
            break;
        }
        reply.ok(200);
        assert_eq!(header(&reply, "ratelimit-limit"), 3);
        assert!(header(&reply, "ratelimit-remaining") < 3);
    }
    let refused = refused.expect("a 429 within seven requests");
    let problem = refused.problem(429);
    assert_eq!(
        problem["type"],
        "https://herald.dev/problems/too-many-requests"
    );
    let retry_after = header(&refused, "retry-after");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(header(&refused, "ratelimit-remaining"), 0);
    assert_eq!(header(&refused, "ratelimit-reset"), retry_after);
    assert_eq!(header(&refused, "ratelimit-limit"), 3);

    // Another tenant, same server: unaffected, with the default limit.
    let fine = app.user("bob", calm).get("/api/contacts").await;
    fine.ok(200);
    assert_eq!(header(&fine, "ratelimit-limit"), 1000);
    assert_eq!(header(&fine, "ratelimit-remaining"), 999);

    // The other instance learns alice's count through the shared counters.
    let elsewhere = two.user("alice", busy);
    eventually(Duration::from_secs(10), || {
        let alice = &alice;
        let elsewhere = &elsewhere;
        async move {
            alice.get("/api/contacts").await;
            elsewhere.get("/api/contacts").await.status == 429
        }
    })
    .await;
}

#[tokio::test]
async fn a_process_reads_a_tenants_limit_once_and_its_syncs_renew_it() {
    // Queries are counted from sqlx's events, which reach the counter through the subscriber.
    herald::telemetry::init();
    let app = TestApp::spawn_config(|c| c.observer.rate_limit_per_minute = 1000).await;
    let tenant = app.tenant("alice").await;

    // The first transaction in the tenant reads its limit; the next one knows it.
    let db =
        herald::db::Database::connect_lazy(&app.app_role_url(), 1, Duration::from_secs(1), "test")
            .unwrap();
    let verifier = herald::auth::Verifier::new(&herald::config::JwtConfig {
        hs256_secret: Some(herald_tests::SECRET.to_owned()),
        ..Default::default()
    });
    let contacts = herald::App::new(herald::api::contacts::ENDPOINT, db, Arc::new(verifier));
    let request = || {
        http::Request::builder()
            .header(
                "authorization",
                format!("Bearer {}", herald_tests::token("alice", None, 60)),
            )
            .header("x-tenant-id", tenant.to_string())
            .body(lambda_http::Body::Empty)
            .unwrap()
    };
    let enter = || async {
        let tx = contacts.begin(&request(), herald::auth::Access::Read).await;
        assert!(tx.is_ok(), "alice may read her tenant");
    };
    let ((), first) = herald::metrics::measure(enter()).await;
    let ((), second) = herald::metrics::measure(enter()).await;
    assert_eq!(
        first.db_queries, 2,
        "app.enter_tenant and the limit: {first:?}"
    );
    assert_eq!(second.db_queries, 1, "app.enter_tenant alone: {second:?}");

    // A busy process learns a changed limit from its next sync, well before the limit it
    // knows goes stale and a request would read it again.
    let alice = app.user("alice", tenant);
    let before = alice.get("/api/contacts").await;
    before.ok(200);
    assert_eq!(header(&before, "ratelimit-limit"), 1000);
    sqlx::query("UPDATE tenants SET rate_limit_per_minute = 500 WHERE id = $1")
        .bind(tenant)
        .execute(&app.owner)
        .await
        .unwrap();
    let deadline = herald::ratelimit::LIMIT_FRESH / 2;
    eventually(deadline, || {
        let alice = &alice;
        async move { header(&alice.get("/api/contacts").await, "ratelimit-limit") == 500 }
    })
    .await;
}
