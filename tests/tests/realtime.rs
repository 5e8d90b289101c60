//! Realtime: real WebSocket clients against `herald-local`'s `/ws`, the outbox dispatcher
//! and the `@connections` management API.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

use herald_tests::ws::{FRAME_DEADLINE, WsClient};
use herald_tests::{TestApp, eventually, token};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

const DEADLINE: Duration = Duration::from_secs(10);

async fn connections(app: &TestApp) -> Vec<(Uuid, String, String)> {
    sqlx::query_as("SELECT tenant_id, connection_id, sub FROM ws_connections ORDER BY connected_at")
        .fetch_all(&app.owner)
        .await
        .unwrap()
}

async fn pending_events(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM outbox_events WHERE dispatched_at IS NULL")
        .fetch_one(&app.owner)
        .await
        .unwrap()
}

async fn event_id(app: &TestApp, tenant: Uuid, kind: &str) -> Uuid {
    sqlx::query_scalar(
        "SELECT id FROM outbox_events WHERE tenant_id = $1 AND type = $2 ORDER BY seq DESC LIMIT 1",
    )
    .bind(tenant)
    .bind(kind)
    .fetch_one(&app.owner)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_subscriber_receives_its_tenants_events_and_nothing_of_another_tenant() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alice").await;
    let b = app.tenant("bob").await;
    let mut alice_ws = app.ws("alice", a).await;
    let mut bob_ws = app.ws("bob", b).await;

    let contact = app.user("alice", a).contact("Ada", "+14155552671").await;
    let frame = alice_ws.next().await;
    assert_eq!(frame["type"], "contact_created");
    assert_eq!(frame["tenantId"], a.to_string());
    assert_eq!(frame["payload"], contact);
    assert_eq!(frame["actor"], json!({ "type": "user", "sub": "alice" }));
    assert_eq!(
        frame["id"],
        event_id(&app, a, "contact_created").await.to_string()
    );
    let timestamp = frame["timestamp"].as_str().unwrap();
    assert!(
        time::OffsetDateTime::parse(timestamp, &time::format_description::well_known::Rfc3339)
            .is_ok(),
        "timestamp {timestamp}"
    );
    assert_eq!(
        frame.as_object().unwrap().keys().collect::<BTreeSet<_>>(),
        ["actor", "id", "payload", "tenantId", "timestamp", "type"]
            .iter()
            .map(|k| k.to_string())
            .collect::<BTreeSet<_>>()
            .iter()
            .collect()
    );

    // Once A's batch is stamped, every post of it has been made: anything for Bob would be
    // queued before the answer to his ping.
    eventually(DEADLINE, async || pending_events(&app).await == 0).await;
    assert_eq!(bob_ws.drain_until_pong().await, Vec::<Value>::new());

    // Bob's own change reaches Bob, and not Alice.
    app.user("bob", b).contact("Bo", "+14155552672").await;
    let frame = bob_ws.next().await;
    assert_eq!(frame["type"], "contact_created");
    assert_eq!(frame["tenantId"], b.to_string());
    eventually(DEADLINE, async || pending_events(&app).await == 0).await;
    assert_eq!(alice_ws.drain_until_pong().await, Vec::<Value>::new());
}

#[tokio::test]
async fn every_event_type_so_far_reaches_a_subscriber() {
    let app = TestApp::spawn().await;
    let t = app.tenant("alice").await;
    let alice = app.user("alice", t);
    let mut ws = app.ws("alice", t).await;

    let id = |v: &Value| v["id"].as_str().unwrap().to_owned();
    // Contacts.
    let ada = alice.contact("Ada", "+14155552671").await;
    let bo = alice.contact("Bo", "+14155552672").await;
    alice
        .patch(
            &format!("/api/contacts/{}", id(&bo)),
            &json!({ "name": "Bob" }),
        )
        .await
        .ok(200);
    assert_eq!(
        alice
            .delete(&format!("/api/contacts/{}", id(&bo)))
            .await
            .status,
        204
    );
    // Groups.
    let group = alice
        .post("/api/groups", &json!({ "name": "VIP" }))
        .await
        .ok(201)
        .clone();
    alice
        .post(
            &format!("/api/groups/{}/contacts", id(&group)),
            &json!({ "contactIds": [id(&ada)] }),
        )
        .await
        .ok(200);
    let spare = alice
        .post("/api/groups", &json!({ "name": "Spare" }))
        .await
        .ok(201)
        .clone();
    assert_eq!(
        alice
            .delete(&format!("/api/groups/{}", id(&spare)))
            .await
            .status,
        204
    );
    // Templates.
    let template = alice
        .post(
            "/api/templates",
            &json!({ "name": "Hi", "body": "Hello {{ contact.name }}" }),
        )
        .await
        .ok(201)
        .clone();
    alice
        .patch(
            &format!("/api/templates/{}", id(&template)),
            &json!({ "name": "Hello" }),
        )
        .await
        .ok(200);
    let old = alice
        .post("/api/templates", &json!({ "name": "Old", "body": "Bye" }))
        .await
        .ok(201)
        .clone();
    assert_eq!(
        alice
            .delete(&format!("/api/templates/{}", id(&old)))
            .await
            .status,
        204
    );
    // Campaigns.
    let campaign = json!({ "name": "Spring", "templateId": id(&template), "groupId": id(&group) });
    let spring = alice
        .post("/api/campaigns", &campaign)
        .await
        .ok(201)
        .clone();
    alice
        .patch(
            &format!("/api/campaigns/{}", id(&spring)),
            &json!({ "name": "Summer" }),
        )
        .await
        .ok(200);
    alice
        .post(&format!("/api/campaigns/{}/start", id(&spring)), &json!({}))
        .await
        .ok(200);
    let draft = alice
        .post("/api/campaigns", &campaign)
        .await
        .ok(201)
        .clone();
    assert_eq!(
        alice
            .delete(&format!("/api/campaigns/{}", id(&draft)))
            .await
            .status,
        204
    );
    // Messages.
    let message = alice
        .post(
            "/api/messages",
            &json!({ "contactId": id(&ada), "body": "Hi" }),
        )
        .await
        .ok(201)
        .clone();
    alice
        .post(
            &format!("/api/messages/{}/status", id(&message)),
            &json!({ "status": "sending" }),
        )
        .await
        .ok(200);
    // Webhooks.
    let hook = alice
        .post(
            "/api/webhooks",
            &json!({ "url": "https://hooks.example.com/herald", "eventTypes": ["contact_created"] }),
        )
        .await
        .ok(201)
        .clone();
    alice
        .patch(
            &format!("/api/webhooks/{}", id(&hook)),
            &json!({ "description": "CRM" }),
        )
        .await
        .ok(200);
    assert_eq!(
        alice
            .delete(&format!("/api/webhooks/{}", id(&hook)))
            .await
            .status,
        204
    );

    // Every type the outbox holds, in commit order, reached the subscriber.
    let written: Vec<(Uuid, String)> =
        sqlx::query_as("SELECT id, type FROM outbox_events WHERE tenant_id = $1 ORDER BY seq")
            .bind(t)
            .fetch_all(&app.owner)
            .await
            .unwrap();
    let mut received = Vec::new();
    while received.len() < written.len() {
        let frame = ws.next().await;
        received.push((
            Uuid::parse_str(frame["id"].as_str().unwrap()).unwrap(),
            frame["type"].as_str().unwrap().to_owned(),
        ));
    }
    assert_eq!(received, written);
    let types: BTreeSet<&str> = received.iter().map(|(_, t)| t.as_str()).collect();
    let expected: BTreeSet<&str> = herald::events::EventType::ALL
        .iter()
        .map(|t| t.as_str())
        // Written by the workers rather than by a request: `webhook_triggered` per delivery
        // attempt (tests/tests/webhook_delivery.rs) and `campaign_progress` for campaigns of
        // more than 100 recipients (tests/tests/campaign_engine.rs). Both go through the
        // same outbox and dispatcher as the types above.
        .filter(|t| !matches!(*t, "webhook_triggered" | "campaign_progress"))
        .collect();
    assert_eq!(types, expected);
}

#[tokio::test]
async fn subscribe_narrows_the_types_a_connection_receives() {
    let app = TestApp::spawn().await;
    let t = app.tenant("alice").await;
    let alice = app.user("alice", t);
    let mut narrow = app.ws("alice", t).await;
    let mut wide = app.ws("alice", t).await;

    narrow.send(&json!({ "action": "ping" })).await;
    assert_eq!(narrow.next().await["type"], "pong");
    narrow
        .send(&json!({ "action": "subscribe", "types": ["contact_deleted", "group_created"] }))
        .await;
    assert_eq!(
        narrow.next().await,
        json!({ "type": "subscribed", "types": ["contact_deleted", "group_created"] })
    );
    // Bad messages are answered, and change nothing.
    narrow
        .send(&json!({ "action": "subscribe", "types": ["contact_exploded"] }))
        .await;
    let refused = narrow.next().await;
    assert_eq!(refused["type"], "error");
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("contact_exploded")
    );
    narrow.send(&json!({ "action": "dance" })).await;
    assert_eq!(narrow.next().await["type"], "error");

    let ada = alice.contact("Ada", "+14155552671").await;
    let path = format!("/api/contacts/{}", ada["id"].as_str().unwrap());
    alice
        .patch(&path, &json!({ "name": "Ada L." }))
        .await
        .ok(200);
    assert_eq!(alice.delete(&path).await.status, 204);

    let frame = narrow.next().await;
    assert_eq!(frame["type"], "contact_deleted");
    assert_eq!(frame["payload"]["id"], ada["id"]);
    // The other connection of the same user still receives everything.
    let all: Vec<Value> = vec![wide.next().await, wide.next().await, wide.next().await];
    let types: Vec<&str> = all.iter().map(|f| f["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        ["contact_created", "contact_updated", "contact_deleted"]
    );

    eventually(DEADLINE, async || pending_events(&app).await == 0).await;
    assert_eq!(narrow.drain_until_pong().await, Vec::<Value>::new());
    let stored: Option<Vec<String>> =
        sqlx::query_scalar("SELECT types FROM ws_connections WHERE types IS NOT NULL")
            .fetch_one(&app.owner)
            .await
            .unwrap();
    assert_eq!(stored.unwrap(), ["contact_deleted", "group_created"]);
}

#[tokio::test]
async fn bad_expired_or_non_member_tokens_are_refused_at_connect_and_nothing_is_stored() {
    let app = TestApp::spawn().await;
    let t = app.tenant("alice").await;

    let forged =
        herald_local::token::issue("not-the-secret-at-all-but-long-enough", "alice", None, 3600)
            .unwrap();
    let expired = {
        let claims = json!({ "sub": "alice", "exp": jsonwebtoken::get_current_timestamp() - 3600 });
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(herald_tests::SECRET.as_bytes()),
        )
        .unwrap()
    };
    let base = app.base.replacen("http://", "ws://", 1);
    let cases = [
        (format!("{base}/ws?tenantId={t}"), 401),
        (format!("{base}/ws?token=garbage&tenantId={t}"), 401),
        (app.ws_url(&forged, Some(t), "en"), 401),
        (app.ws_url(&expired, Some(t), "en"), 401),
        (
            app.ws_url(&token("mallory", None, 3600), Some(t), "en"),
            403,
        ),
        // A tenant that does not exist answers like one the caller is not in.
        (
            app.ws_url(&token("alice", None, 3600), Some(Uuid::now_v7()), "en"),
            403,
        ),
        // A tenant claim is checked too.
        (
            app.ws_url(&token("mallory", Some(t), 3600), None, "en"),
            403,
        ),
        (app.ws_url(&token("alice", None, 3600), None, "en"), 400),
    ];
    for (url, status) in cases {
        assert_eq!(WsClient::connect(&url).await.err(), Some(status), "{url}");
    }
    assert_eq!(connections(&app).await, []);

    // The token's own tenant claim is enough for a member.
    let mut ws = WsClient::connect(&app.ws_url(&token("alice", Some(t), 3600), None, "es"))
        .await
        .expect("accepted");
    ws.send(&json!({ "action": "ping" })).await;
    assert_eq!(ws.next().await["type"], "pong");
    assert_eq!(connections(&app).await.len(), 1);
}

#[tokio::test]
async fn a_client_that_vanishes_without_a_close_is_pruned_through_410() {
    let app = TestApp::spawn().await;
    let t = app.tenant("alice").await;
    let ghost = app.ws("alice", t).await;
    let ghost_id = connections(&app).await[0].1.clone();
    let mut live = app.ws("alice", t).await;
    assert_eq!(connections(&app).await.len(), 2);

    ghost.vanish();
    // The gateway forgets the socket (410 from @connections) but no $disconnect runs.
    let url = format!("{}/@connections/{ghost_id}", app.base);
    eventually(DEADLINE, async || {
        app.http.get(&url).send().await.unwrap().status() == 410
    })
    .await;
    assert_eq!(connections(&app).await.len(), 2);

    app.user("alice", t).contact("Ada", "+14155552671").await;
    assert_eq!(live.next().await["type"], "contact_created");
    eventually(DEADLINE, async || connections(&app).await.len() == 1).await;
    assert_ne!(connections(&app).await[0].1, ghost_id);
    eventually(DEADLINE, async || pending_events(&app).await == 0).await;
}

#[tokio::test]
async fn a_dispatcher_crash_between_posting_and_marking_resends_the_batch_and_loses_nothing() {
    let app = TestApp::spawn().await;
    let t = app.tenant("alice").await;
    let alice = app.user("alice", t);
    let mut ws = app.ws("alice", t).await;
    let crashes = app.dispatcher.crash_after_posting.clone();

    crashes.store(1, Ordering::SeqCst);
    alice.contact("Ada", "+14155552671").await;
    let first = ws.next().await;
    // Killed after posting: the event is still pending, so it goes out again, same id.
    let again = ws.next().await;
    assert_eq!(first["type"], "contact_created");
    assert_eq!(again, first);
    assert_eq!(crashes.load(Ordering::SeqCst), 0);
    eventually(DEADLINE, async || pending_events(&app).await == 0).await;

    // Nothing lost after the restart, and nothing sent twice without a crash.
    alice.contact("Bo", "+14155552672").await;
    let next = ws.next().await;
    assert_eq!(next["payload"]["name"], "Bo");
    eventually(DEADLINE, async || pending_events(&app).await == 0).await;
    assert_eq!(ws.drain_until_pong().await, Vec::<Value>::new());
}

#[tokio::test]
async fn ws_stats_count_the_callers_tenants_connections_by_user_and_language() {
    let app = TestApp::spawn().await;
    let t = app.tenant("alice").await;
    let other = app.tenant("carol").await;
    app.add_member(t, "bob", "viewer").await;
    let _a1 = app.ws_lang("alice", t, "en").await;
    let _a2 = app.ws_lang("alice", t, "es").await;
    let _b = app.ws_lang("bob", t, "es").await;
    let _c = app.ws_lang("carol", other, "en").await;

    let stats = app
        .user("bob", t)
        .get("/api/ws/stats")
        .await
        .ok(200)
        .clone();
    assert_eq!(
        stats,
        json!({
            "connections": 3,
            "byUser": [{ "sub": "alice", "connections": 2 }, { "sub": "bob", "connections": 1 }],
            "byLanguage": [{ "language": "es", "connections": 2 }, { "language": "en", "connections": 1 }],
        })
    );
    app.user("mallory", t)
        .get("/api/ws/stats")
        .await
        .problem(403);
    app.request(reqwest::Method::GET, "/api/ws/stats")
        .send()
        .await
        .map(|r| assert_eq!(r.status(), 401))
        .unwrap();
}

#[tokio::test]
async fn a_clean_close_runs_disconnect_and_the_management_api_behaves_like_api_gateway() {
    let app = TestApp::spawn().await;
    let t = app.tenant("alice").await;
    let mut ws = app.ws("alice", t).await;
    let id = connections(&app).await[0].1.clone();
    let url = format!("{}/@connections/{id}", app.base);

    // GET describes the connection; POST sends a frame.
    let info: Value = app
        .http
        .get(&url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(info["connectedAt"].is_string());
    assert_eq!(info["identity"]["sourceIp"], "127.0.0.1");
    let posted = app
        .http
        .post(&url)
        .body(r#"{"hello":"world"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 200);
    assert_eq!(ws.next().await, json!({ "hello": "world" }));
    // Over 128 KB is refused; unknown connections are gone.
    let big = "x".repeat(128 * 1024 + 1);
    assert_eq!(
        app.http.post(&url).body(big).send().await.unwrap().status(),
        413
    );
    let unknown = format!("{}/@connections/bm9wZW5vcGVub3Bl", app.base);
    let gone = app.http.post(&unknown).body("{}").send().await.unwrap();
    assert_eq!(gone.status(), 410);
    assert_eq!(gone.headers()["x-amzn-errortype"], "GoneException");
    assert_eq!(app.http.get(&unknown).send().await.unwrap().status(), 410);
    assert_eq!(
        app.http.delete(&unknown).send().await.unwrap().status(),
        410
    );

    // DELETE closes the socket and runs $disconnect.
    assert_eq!(app.http.delete(&url).send().await.unwrap().status(), 204);
    assert!(ws.closed_within(FRAME_DEADLINE).await);
    eventually(DEADLINE, async || connections(&app).await.is_empty()).await;
    assert_eq!(app.http.get(&url).send().await.unwrap().status(), 410);

    // A client's own close frame runs $disconnect too.
    let mut ws = app.ws("alice", t).await;
    assert_eq!(connections(&app).await.len(), 1);
    ws.send_raw(Message::Close(None)).await.unwrap();
    eventually(DEADLINE, async || connections(&app).await.is_empty()).await;

    // A message over API Gateway's 128 KB closes the connection.
    let mut ws = app.ws("alice", t).await;
    let huge = json!({ "action": "ping", "pad": "x".repeat(128 * 1024) });
    let _ = ws.send_raw(Message::Text(huge.to_string().into())).await;
    assert!(ws.closed_within(FRAME_DEADLINE).await);
}

/// Every connection of the tenant, of any member and role, receives each event once, with
/// the same id.
#[tokio::test]
async fn every_connection_of_the_tenant_receives_each_event_once() {
    let app = TestApp::spawn().await;
    let t = app.tenant("alice").await;
    app.add_member(t, "bob", "viewer").await;
    let mut clients = vec![
        app.ws("alice", t).await,
        app.ws("alice", t).await,
        app.ws_lang("bob", t, "es").await,
    ];
    let contact = app.user("alice", t).contact("Ada", "+14155552671").await;
    let id = event_id(&app, t, "contact_created").await.to_string();
    for ws in &mut clients {
        let frame = ws.next().await;
        assert_eq!(frame["type"], "contact_created");
        assert_eq!(frame["id"], id.as_str());
        assert_eq!(frame["payload"]["id"], contact["id"]);
    }
    eventually(DEADLINE, async || pending_events(&app).await == 0).await;
    for ws in &mut clients {
        assert_eq!(
            ws.drain_until_pong().await,
            Vec::<Value>::new(),
            "nothing twice"
        );
    }
}
