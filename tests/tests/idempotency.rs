//! `Idempotency-Key` on POST: replays, mismatches, requests in flight, crashes on either
//! side of the commit, release after a 429, expiry and the purge. Per tenant.

use std::time::Duration;

use herald_tests::{TestApp, User, eventually, read};
use reqwest::Method;
use serde_json::Value;
use uuid::Uuid;

const DEADLINE: Duration = Duration::from_secs(10);
const ADA: &str = r#"{"name":"Ada","phone":"+14155552671"}"#;
const GRACE: &str = r#"{"name":"Grace","phone":"+14155552672"}"#;
const LINUS: &str = r#"{"name":"Linus","phone":"+14155552673"}"#;

fn keyed(user: &User<'_>, key: &str, body: &'static str) -> reqwest::RequestBuilder {
    user.request(Method::POST, "/api/contacts")
        .header("Idempotency-Key", key)
        .header("Content-Type", "application/json")
        .body(body)
}

async fn keys(app: &TestApp, tenant: Uuid) -> i64 {
    app.count(
        "SELECT count(*) FROM idempotency_keys WHERE tenant_id = $1",
        tenant,
    )
    .await
}

/// What the gateway hands the handler for `POST /api/contacts` with `body`, fingerprinted
/// as the server fingerprints it.
fn fingerprint(body: &'static str) -> Vec<u8> {
    let req: lambda_http::Request = http::Request::post("/api/contacts")
        .body(lambda_http::Body::from(body))
        .unwrap();
    herald::idempotency::Fingerprint::of(&req)
        .as_bytes()
        .to_vec()
}

#[tokio::test]
async fn the_same_key_and_request_replay_the_first_response() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("alice").await;
    let alice = app.user("alice", tenant);

    let first = alice.send(keyed(&alice, "create-ada", ADA)).await;
    let created = first.ok(201).clone();
    assert!(first.headers.get("idempotent-replayed").is_none());

    let again = alice.send(keyed(&alice, "create-ada", ADA)).await;
    assert_eq!(
        again.ok(201),
        &created,
        "the stored response, byte for byte"
    );
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(again.content_type(), "application/json");
    assert_ne!(
        again.headers["x-request-id"], first.headers["x-request-id"],
        "each delivery has its own request id"
    );

    assert_eq!(app.live_contacts(tenant).await, 1, "one contact, not two");
    assert_eq!(app.events(tenant, "contact_created").await, 1);

    // Errors are results too: a refused request replays its refusal.
    let bad = r#"{"name":"No phone","phone":"12345"}"#;
    let refused = alice.send(keyed(&alice, "bad", bad)).await;
    let problem = refused.problem(422).clone();
    let replayed = alice.send(keyed(&alice, "bad", bad)).await;
    assert_eq!(replayed.problem(422), &problem);
    assert_eq!(replayed.headers["idempotent-replayed"], "true");
}

#[tokio::test]
async fn the_same_key_with_another_request_is_422_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("alice").await;
    let alice = app.user("alice", tenant);
    alice.send(keyed(&alice, "k1", ADA)).await.ok(201);

    let reused = alice.send(keyed(&alice, "k1", GRACE)).await;
    let problem = reused.problem(422);
    assert_eq!(
        problem["type"],
        "https://herald.dev/problems/idempotency-key-reused"
    );
    // Another route with the same body is another request too.
    let elsewhere = alice
        .send(
            alice
                .request(Method::POST, "/api/groups")
                .header("Idempotency-Key", "k1")
                .header("Content-Type", "application/json")
                .body(ADA),
        )
        .await;
    elsewhere.problem(422);
    assert_eq!(app.live_contacts(tenant).await, 1);
    assert_eq!(
        app.count("SELECT count(*) FROM groups WHERE tenant_id = $1", tenant)
            .await,
        0
    );
}

#[tokio::test]
async fn keys_are_scoped_per_tenant() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alice").await;
    let b = app.tenant("bob").await;
    let alice = app.user("alice", a);
    let bob = app.user("bob", b);

    let in_a = alice
        .send(keyed(&alice, "shared-key", ADA))
        .await
        .ok(201)
        .clone();
    let in_b = bob.send(keyed(&bob, "shared-key", ADA)).await;
    assert!(
        in_b.headers.get("idempotent-replayed").is_none(),
        "B's key is B's own"
    );
    assert_ne!(in_b.ok(201)["id"], in_a["id"]);
    assert_eq!(app.live_contacts(a).await, 1);
    assert_eq!(app.live_contacts(b).await, 1);

    // A key from one tenant cannot be used to read another's response: a non-member's
    // keyed request is refused before the key is looked at.
    let mallory = app.user("mallory", a);
    mallory
        .send(keyed(&mallory, "shared-key", ADA))
        .await
        .problem(403);
}

/// The first request is held mid-flight by a lock its insert waits on (an uncommitted
/// contact with the same phone); its retry is 409; once it finishes, retries replay it.
#[tokio::test]
async fn a_retry_while_the_first_is_in_flight_is_409() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("alice").await;
    let alice = app.user("alice", tenant);

    let mut blocker = app.owner.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO contacts (tenant_id, id, name, phone) VALUES ($1, $2, 'Blocker', '+14155552671')",
    )
    .bind(tenant)
    .bind(Uuid::new_v4())
    .execute(&mut *blocker)
    .await
    .unwrap();

    let first = tokio::spawn(keyed(&alice, "slow", ADA).send());
    eventually(DEADLINE, || async { keys(&app, tenant).await == 1 }).await;

    let retry = alice.send(keyed(&alice, "slow", ADA)).await;
    let problem = retry.problem(409);
    assert_eq!(
        problem["type"],
        "https://herald.dev/problems/idempotency-key-in-use"
    );
    assert_eq!(retry.headers["retry-after"], "1");

    blocker.rollback().await.unwrap();
    let first = read(first.await.unwrap().unwrap()).await;
    let created = first.ok(201).clone();
    let replay = alice.send(keyed(&alice, "slow", ADA)).await;
    assert_eq!(replay.ok(201), &created);
    assert_eq!(app.live_contacts(tenant).await, 1);
}

/// A request that died before its transaction committed left only a lease: once it ends,
/// a retry runs. One that died after committing (its response never stored) is not run
/// again.
#[tokio::test]
async fn crashes_before_the_commit_are_retried_and_after_it_are_not_doubled() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("alice").await;
    let alice = app.user("alice", tenant);
    let stale = |key: &'static str, committed: bool| {
        sqlx::query(
            "INSERT INTO idempotency_keys (tenant_id, key, fingerprint, locked_until, committed_at) \
             VALUES ($1, $2, $3, now() - interval '1 second', CASE WHEN $4 THEN now() END)",
        )
        .bind(tenant)
        .bind(key)
        .bind(fingerprint(ADA))
        .bind(committed)
        .execute(&app.owner)
    };

    stale("died-before-commit", false).await.unwrap();
    let retried = alice.send(keyed(&alice, "died-before-commit", ADA)).await;
    retried.ok(201);
    assert_eq!(app.live_contacts(tenant).await, 1);

    stale("died-after-commit", true).await.unwrap();
    let refused = alice.send(keyed(&alice, "died-after-commit", ADA)).await;
    let problem = refused.problem(409);
    assert!(
        problem["detail"].as_str().unwrap().contains("completed"),
        "{problem}"
    );
    assert_eq!(app.live_contacts(tenant).await, 1, "not run a second time");
}

/// A handler's commit marks its key in the same transaction: the mark exists exactly when
/// the work does.
#[tokio::test]
async fn the_commit_marks_the_key_and_a_429_releases_it() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("alice").await;
    let alice = app.user("alice", tenant);
    // A limit of two a minute, set before the process first reads it (it then keeps it
    // until a sync renews it).
    sqlx::query("UPDATE tenants SET rate_limit_per_minute = 2 WHERE id = $1")
        .bind(tenant)
        .execute(&app.owner)
        .await
        .unwrap();
    alice.send(keyed(&alice, "marked", ADA)).await.ok(201);
    let committed = app
        .count(
            "SELECT count(*) FROM idempotency_keys WHERE tenant_id = $1 \
             AND key = 'marked' AND committed_at IS NOT NULL AND status = 201",
            tenant,
        )
        .await;
    assert_eq!(committed, 1);

    // Spend the tenant's whole limit: the refused request's key is released, so that the
    // retry the 429 invites runs instead of replaying the refusal. (A minute turning over
    // midway restarts the count, hence a few tries.)
    let mut refused = None;
    for attempt in 0..5 {
        let key = format!("limited-{attempt}");
        let reply = alice.send(keyed(&alice, &key, GRACE)).await;
        if reply.status == 429 {
            refused = Some((key, reply));
            break;
        }
    }
    let (key, limited) = refused.expect("a 429 within five requests");
    limited.problem(429);
    let left: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM idempotency_keys WHERE tenant_id = $1 AND key = $2",
    )
    .bind(tenant)
    .bind(&key)
    .fetch_one(&app.owner)
    .await
    .unwrap();
    assert_eq!(left, 0, "the key is free for the retry");
}

#[tokio::test]
async fn keys_expire_after_24_hours_and_are_purged() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("alice").await;
    let alice = app.user("alice", tenant);
    alice.send(keyed(&alice, "old", ADA)).await.ok(201);
    alice.send(keyed(&alice, "recent", GRACE)).await.ok(201);
    let age_old_key = || {
        sqlx::query(
            "UPDATE idempotency_keys SET created_at = now() - interval '25 hours' WHERE key = 'old'",
        )
        .execute(&app.owner)
    };
    age_old_key().await.unwrap();

    // An expired key is a new key: another request may use it.
    alice.send(keyed(&alice, "old", LINUS)).await.ok(201);
    age_old_key().await.unwrap();

    // The purge runs as the application role, across tenants, through its definer function.
    let db = herald::db::Database::connect_lazy(
        &app.app_role_url(),
        1,
        Duration::from_secs(1),
        "purge-test",
    )
    .unwrap();
    assert_eq!(herald::idempotency::purge(&db).await.unwrap(), 1);
    assert_eq!(keys(&app, tenant).await, 1, "the recent key stays");
    // And the app role cannot delete recent keys through the definer's rights.
    assert_eq!(herald::idempotency::purge(&db).await.unwrap(), 0);
}

#[tokio::test]
async fn malformed_keys_are_400_and_other_methods_ignore_keys() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("alice").await;
    let alice = app.user("alice", tenant);
    for bad in ["", "   ", &"k".repeat(256)] {
        let reply = alice.send(keyed(&alice, bad, ADA)).await;
        reply.problem(400);
    }
    assert_eq!(app.live_contacts(tenant).await, 0);
    assert_eq!(keys(&app, tenant).await, 0);

    let listed = alice
        .send(
            alice
                .request(Method::GET, "/api/contacts")
                .header("Idempotency-Key", "k"),
        )
        .await;
    listed.ok(200);
    assert_eq!(keys(&app, tenant).await, 0);
}

/// Every POST a client makes takes the key; only the provider's callback does not (it is
/// idempotent by itself: statuses only move forward).
#[tokio::test]
async fn every_post_but_the_provider_callback_documents_the_key() {
    let app = TestApp::spawn().await;
    let doc: Value = app.openapi().await;
    for route in herald::api::routes().filter(|r| r.method() == "POST") {
        let params = doc["paths"][route.path()]["post"]["parameters"].as_array();
        let declared = params.is_some_and(|ps| {
            ps.iter()
                .any(|p| p["name"] == "Idempotency-Key" && p["in"] == "header")
        });
        let callback = route.key() == "POST /api/providers/twilio/status";
        assert_eq!(declared, !callback, "{}", route.key());
    }
}

/// Creating a tenant has no tenant to keep a key in: the key decides the tenant's id, so a
/// retry finds the tenant made.
#[tokio::test]
async fn creating_a_tenant_with_a_key_makes_one_tenant() {
    let app = TestApp::spawn().await;
    let token = herald_tests::token("carol", None, 600);
    let create = |key: &'static str, name: &'static str| {
        app.request(Method::POST, "/api/tenants")
            .bearer_auth(&token)
            .header("Idempotency-Key", key)
            .json(&serde_json::json!({ "name": name }))
    };
    let first = read(create("acme-signup", "Acme").send().await.unwrap()).await;
    let tenant = first.ok(201).clone();
    let again = read(create("acme-signup", "Acme").send().await.unwrap()).await;
    assert_eq!(again.ok(201)["id"], tenant["id"]);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    let other_name = read(create("acme-signup", "Acme Corp").send().await.unwrap()).await;
    other_name.problem(422);

    let mine = read(
        app.request(Method::GET, "/api/tenants")
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(mine.ok(200)["items"].as_array().unwrap().len(), 1);

    // Another caller's same key is another tenant.
    let dave = herald_tests::token("dave", None, 600);
    let theirs = read(
        app.request(Method::POST, "/api/tenants")
            .bearer_auth(&dave)
            .header("Idempotency-Key", "acme-signup")
            .json(&serde_json::json!({ "name": "Acme" }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_ne!(theirs.ok(201)["id"], tenant["id"]);
}
