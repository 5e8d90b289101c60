//! Webhook configuration: CRUD, secrets shown once and masked everywhere else (events
//! included), regeneration with a 24-hour overlap, delivery logs.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use herald_tests::{TestApp, User};
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

fn hook() -> Value {
    json!({
        "url": "https://hooks.example.com/herald",
        "eventTypes": ["contact_created", "campaign_status_changed"],
        "description": "CRM sync",
    })
}

async fn create(user: &User<'_>) -> Value {
    user.post("/api/webhooks", &hook()).await.ok(201).clone()
}

fn path_of(webhook: &Value) -> String {
    format!("/api/webhooks/{}", webhook["id"].as_str().unwrap())
}

/// The masked form of a full secret: `whsec_…` and its last four characters.
fn masked(secret: &str) -> String {
    let body = secret.trim_end_matches('=');
    format!("whsec_…{}", &body[body.len() - 4..])
}

/// Every outbox payload of the tenant, as text.
async fn payloads(app: &TestApp, tenant: Uuid) -> Vec<(String, Value)> {
    sqlx::query_as("SELECT type, payload FROM outbox_events WHERE tenant_id = $1 ORDER BY seq")
        .bind(tenant)
        .fetch_all(&app.owner)
        .await
        .unwrap()
}

async fn webhook_rows(app: &TestApp, tenant: Uuid) -> i64 {
    app.count("SELECT count(*) FROM webhooks WHERE tenant_id = $1", tenant)
        .await
}

#[tokio::test]
async fn create_get_update_regenerate_and_soft_delete() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("alice").await;
    let alice = app.user("alice", tenant);

    let created = alice
        .post(
            "/api/webhooks",
            &json!({ "url": "https://hooks.example.com/herald",
                     "eventTypes": ["contact_created", "webhook_triggered", "contact_created"],
                     "description": "  CRM sync  " }),
        )
        .await;
    let created = created.ok(201).clone();
    assert_eq!(created["url"], "https://hooks.example.com/herald");
    assert_eq!(
        created["eventTypes"],
        json!(["contact_created", "webhook_triggered"]),
        "repeats dropped, order kept"
    );
    assert_eq!(created["description"], "CRM sync");
    assert_eq!(created["enabled"], true, "enabled by default");
    assert_eq!(created["tenantId"], tenant.to_string());
    assert!(created.get("previousSecretExpiresAt").is_none());
    assert!(created.get("deletedAt").is_none());

    // The secret: whsec_ + standard base64 of at least 24 random bytes, in full this once.
    let secret = created["secret"].as_str().unwrap().to_owned();
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").expect("whsec_ prefix"))
        .expect("standard base64");
    assert!(key.len() >= 24, "{} bytes", key.len());
    let stored: String = sqlx::query_scalar("SELECT secret FROM webhooks WHERE id = $1")
        .bind(Uuid::parse_str(created["id"].as_str().unwrap()).unwrap())
        .fetch_one(&app.owner)
        .await
        .unwrap();
    assert_eq!(stored, secret);

    // Everywhere else it is masked.
    let path = path_of(&created);
    let got = alice.get(&path).await.ok(200).clone();
    assert_eq!(got["secret"], masked(&secret));
    let mut expected = created.clone();
    expected["secret"] = json!(masked(&secret));
    assert_eq!(got, expected, "get shows what create answered, masked");
    let list = alice.get("/api/webhooks").await.ok(200).clone();
    assert_eq!(list["items"], json!([expected]));

    // PATCH: absent fields stay, null clears the description, eventTypes replaces.
    let updated = alice
        .patch(
            &path,
            &json!({ "url": "http://127.0.0.1:9000/hook", "eventTypes": ["message_status_changed"],
                     "description": null, "enabled": false }),
        )
        .await;
    let updated = updated.ok(200).clone();
    assert_eq!(updated["url"], "http://127.0.0.1:9000/hook");
    assert_eq!(updated["eventTypes"], json!(["message_status_changed"]));
    assert_eq!(updated["description"], Value::Null);
    assert_eq!(updated["enabled"], false);
    assert_eq!(updated["secret"], masked(&secret));
    let again = alice.patch(&path, &json!({ "enabled": true })).await;
    assert_eq!(again.ok(200)["enabled"], true);
    assert_eq!(again.ok(200)["url"], "http://127.0.0.1:9000/hook");

    // Regenerate: the new secret in full this once; the old one signs for 24 more hours.
    let regenerated = alice
        .post(&format!("{path}/secret"), &json!({}))
        .await
        .ok(200)
        .clone();
    let new_secret = regenerated["secret"].as_str().unwrap().to_owned();
    assert!(new_secret.starts_with("whsec_"));
    assert_ne!(new_secret, secret);
    assert!(regenerated["previousSecretExpiresAt"].is_string());
    let (previous, hours_left): (String, f64) = sqlx::query_as(
        "SELECT previous_secret,
                extract(epoch FROM previous_secret_expires_at - now())::float8 / 3600
         FROM webhooks WHERE tenant_id = $1",
    )
    .bind(tenant)
    .fetch_one(&app.owner)
    .await
    .unwrap();
    assert_eq!(previous, secret, "the old secret is kept");
    assert!(
        (23.9..=24.0).contains(&hours_left),
        "expires in {hours_left} h"
    );
    let got = alice.get(&path).await.ok(200).clone();
    assert_eq!(got["secret"], masked(&new_secret));
    assert_eq!(
        got["previousSecretExpiresAt"],
        regenerated["previousSecretExpiresAt"]
    );

    // Soft delete.
    assert_eq!(alice.delete(&path).await.status, 204);
    alice.get(&path).await.problem(404);
    alice.delete(&path).await.problem(404);
    alice
        .patch(&path, &json!({ "enabled": false }))
        .await
        .problem(404);
    alice
        .post(&format!("{path}/secret"), &json!({}))
        .await
        .problem(404);
    alice.get(&format!("{path}/logs")).await.problem(404);
    assert_eq!(alice.get("/api/webhooks").await.ok(200)["items"], json!([]));
    assert_eq!(
        app.count(
            "SELECT count(*) FROM webhooks WHERE tenant_id = $1 AND deleted_at IS NOT NULL",
            tenant
        )
        .await,
        1,
        "the row stays, stamped"
    );

    // One event per write, of the right type, and never the secret.
    let events = payloads(&app, tenant).await;
    let types: Vec<&str> = events.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        types,
        [
            "webhook_created",
            "webhook_updated",
            "webhook_updated",
            "webhook_updated",
            "webhook_deleted"
        ]
    );
    assert_eq!(events[0].1["secret"], masked(&secret));
    assert_eq!(events[0].1["url"], "https://hooks.example.com/herald");
    assert_eq!(events[3].1["secret"], masked(&new_secret), "regeneration");
    assert!(events[4].1["deletedAt"].is_string());
    for (kind, payload) in &events {
        let text = payload.to_string();
        for full in [&secret, &new_secret] {
            let body = full.strip_prefix("whsec_").unwrap();
            assert!(!text.contains(body), "{kind} carries a secret: {text}");
        }
        assert!(payload.get("previousSecret").is_none());
    }
}

#[tokio::test]
async fn bad_input_is_refused_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("alice").await;
    let alice = app.user("alice", tenant);

    let refused = [
        (
            json!({ "url": "http://hooks.example.com/x", "eventTypes": ["contact_created"] }),
            "/url",
        ),
        (
            json!({ "url": "http://10.0.0.1/x", "eventTypes": ["contact_created"] }),
            "/url",
        ),
        (
            json!({ "url": "ftp://example.com/x", "eventTypes": ["contact_created"] }),
            "/url",
        ),
        (
            json!({ "url": "hooks.example.com", "eventTypes": ["contact_created"] }),
            "/url",
        ),
        (
            json!({ "url": "https://u:p@example.com/", "eventTypes": ["contact_created"] }),
            "/url",
        ),
        (
            json!({ "url": format!("https://example.com/{}", "a".repeat(2048)), "eventTypes": ["contact_created"] }),
            "/url",
        ),
        (
            json!({ "url": "https://example.com/", "eventTypes": [] }),
            "/eventTypes",
        ),
        (
            json!({ "url": "https://example.com/", "eventTypes": ["contact_created", "contact_exploded"] }),
            "/eventTypes/1",
        ),
        (
            json!({ "url": "https://example.com/", "eventTypes": ["contact_created"], "description": "x".repeat(2001) }),
            "/description",
        ),
    ];
    for (body, pointer) in &refused {
        let reply = alice.post("/api/webhooks", body).await;
        let problem = reply.problem(422);
        assert_eq!(problem["errors"][0]["pointer"], *pointer, "{body}");
    }
    // The unknown element is named.
    let reply = alice
        .post(
            "/api/webhooks",
            &json!({ "url": "https://example.com/", "eventTypes": ["contact_created", "contact_exploded"] }),
        )
        .await;
    assert!(
        reply.problem(422)["detail"]
            .as_str()
            .unwrap()
            .contains("contact_exploded")
    );
    // Shape errors: missing fields, wrong types, unknown fields (a caller may not pick the
    // secret).
    for body in [
        json!({ "eventTypes": ["contact_created"] }),
        json!({ "url": "https://example.com/" }),
        json!({ "url": "https://example.com/", "eventTypes": "contact_created" }),
        json!({ "url": "https://example.com/", "eventTypes": ["contact_created"], "secret": "whsec_mine" }),
        json!({ "url": "https://example.com/", "eventTypes": ["contact_created"], "enabled": "yes" }),
    ] {
        alice.post("/api/webhooks", &body).await.problem(422);
    }
    let not_json = alice.request(Method::POST, "/api/webhooks");
    alice
        .send(
            not_json
                .header("content-type", "application/json")
                .body("{"),
        )
        .await
        .problem(400);
    let csv = alice.request(Method::POST, "/api/webhooks");
    alice
        .send(csv.header("content-type", "text/csv").body("url\nx"))
        .await
        .problem(415);
    assert_eq!(webhook_rows(&app, tenant).await, 0);
    assert_eq!(app.all_events().await, 0);

    // Plain http to loopback is allowed (local development).
    for url in ["http://localhost:8080/hook", "http://127.0.0.1/hook"] {
        alice
            .post(
                "/api/webhooks",
                &json!({ "url": url, "eventTypes": ["contact_created"] }),
            )
            .await
            .ok(201);
    }

    // PATCH refusals change nothing.
    let webhook = create(&alice).await;
    let path = path_of(&webhook);
    let before = alice.get(&path).await.ok(200).clone();
    let events_before = app.all_events().await;
    for body in [
        json!({}),
        json!({ "url": "http://example.com/" }),
        json!({ "eventTypes": [] }),
        json!({ "eventTypes": ["nope"] }),
        json!({ "secret": "whsec_mine" }),
        json!({ "enabled": null }),
    ] {
        alice.patch(&path, &body).await.problem(422);
    }
    assert_eq!(alice.get(&path).await.ok(200), &before);
    assert_eq!(app.all_events().await, events_before);

    // Malformed ids are 400 on every route; bad paging is 422.
    for (method, p) in [
        (Method::GET, "/api/webhooks/not-a-uuid"),
        (Method::PATCH, "/api/webhooks/not-a-uuid"),
        (Method::DELETE, "/api/webhooks/not-a-uuid"),
        (Method::POST, "/api/webhooks/not-a-uuid/secret"),
        (Method::GET, "/api/webhooks/not-a-uuid/logs"),
    ] {
        let req = alice.request(method, p).json(&json!({ "enabled": true }));
        alice.send(req).await.problem(400);
    }
    for query in [
        "limit=0",
        "limit=201",
        "offset=-1",
        "cursor=nope",
        "offset=0&cursor=AAAAAAAAAAAAAAAAAAAAAA",
    ] {
        alice
            .get(&format!("/api/webhooks?{query}"))
            .await
            .problem(422);
        alice
            .get(&format!("{path}/logs?{query}"))
            .await
            .problem(422);
    }
    assert_eq!(app.all_events().await, events_before);
}

#[tokio::test]
async fn another_tenants_webhooks_are_not_found_and_viewers_only_read() {
    let app = TestApp::spawn().await;
    let mine = app.tenant("alice").await;
    let theirs = app.tenant("bob").await;
    app.add_member(mine, "vera", "viewer").await;
    app.add_member(mine, "mo", "member").await;
    let alice = app.user("alice", mine);
    let bob = app.user("bob", theirs);

    let their_hook = create(&bob).await;
    let their_path = path_of(&their_hook);
    let events_before = app.all_events().await;
    alice.get(&their_path).await.problem(404);
    alice
        .patch(&their_path, &json!({ "enabled": false }))
        .await
        .problem(404);
    alice.delete(&their_path).await.problem(404);
    alice
        .post(&format!("{their_path}/secret"), &json!({}))
        .await
        .problem(404);
    alice.get(&format!("{their_path}/logs")).await.problem(404);
    assert_eq!(alice.get("/api/webhooks").await.ok(200)["items"], json!([]));
    // Bob's webhook is untouched and no event was written.
    let theirs_now = bob.get(&their_path).await.ok(200).clone();
    let mut expected = their_hook.clone();
    expected["secret"] = json!(masked(their_hook["secret"].as_str().unwrap()));
    assert_eq!(theirs_now, expected);
    assert_eq!(app.all_events().await, events_before);

    // A viewer reads; every write is 403 and changes nothing.
    let my_hook = create(&alice).await;
    let path = path_of(&my_hook);
    let viewer = app.user("vera", mine);
    viewer.get("/api/webhooks").await.ok(200);
    viewer.get(&path).await.ok(200);
    viewer.get(&format!("{path}/logs")).await.ok(200);
    viewer.post("/api/webhooks", &hook()).await.problem(403);
    viewer
        .patch(&path, &json!({ "enabled": false }))
        .await
        .problem(403);
    viewer
        .post(&format!("{path}/secret"), &json!({}))
        .await
        .problem(403);
    viewer.delete(&path).await.problem(403);
    assert_eq!(alice.get(&path).await.ok(200)["enabled"], true);
    assert_eq!(webhook_rows(&app, mine).await, 1);
    // Not a member at all: 403.
    app.user("eve", mine)
        .get("/api/webhooks")
        .await
        .problem(403);

    // A member writes.
    let member = app.user("mo", mine);
    create(&member).await;
    let regenerated = member.post(&format!("{path}/secret"), &json!({})).await;
    assert!(
        regenerated.ok(200)["secret"]
            .as_str()
            .unwrap()
            .starts_with("whsec_")
    );
}

#[tokio::test]
async fn lists_page_by_offset_and_cursor() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("alice").await;
    let alice = app.user("alice", tenant);
    let mut ids = Vec::new();
    for _ in 0..7 {
        ids.push(create(&alice).await["id"].clone());
    }
    ids.reverse(); // newest first

    let first = alice.get("/api/webhooks?limit=3&offset=0").await;
    let first = first.ok(200);
    assert_eq!(first["total"], 7);
    let got: Vec<&Value> = first["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| &w["id"])
        .collect();
    assert_eq!(got, ids[..3].iter().collect::<Vec<_>>());
    let last = alice.get("/api/webhooks?limit=3&offset=6").await;
    assert_eq!(last.ok(200)["items"].as_array().unwrap().len(), 1);

    let mut seen = Vec::new();
    let mut path = "/api/webhooks?limit=3".to_owned();
    loop {
        let page = alice.get(&path).await;
        let page = page.ok(200);
        assert!(page.get("total").is_none());
        for item in page["items"].as_array().unwrap() {
            assert!(item["secret"].as_str().unwrap().starts_with("whsec_…"));
            seen.push(item["id"].clone());
        }
        match page["nextCursor"].as_str() {
            Some(cursor) => path = format!("/api/webhooks?limit=3&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, ids);
}

#[tokio::test]
async fn delivery_logs_page_newest_first() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("alice").await;
    let alice = app.user("alice", tenant);
    let webhook = create(&alice).await;
    let other = create(&alice).await;
    let path = path_of(&webhook);
    let webhook_id = Uuid::parse_str(webhook["id"].as_str().unwrap()).unwrap();
    let other_id = Uuid::parse_str(other["id"].as_str().unwrap()).unwrap();

    assert_eq!(
        alice.get(&format!("{path}/logs")).await.ok(200)["items"],
        json!([])
    );

    // Deliveries come with the delivery issue; here the rows are written directly.
    let mut log_ids = Vec::new();
    for attempt in 1..=7 {
        let id = Uuid::now_v7();
        log_ids.push(id.to_string());
        sqlx::query(
            "INSERT INTO webhook_logs (tenant_id, id, webhook_id, event_id, event_type, attempt,
                                       status_code, duration_ms, response_body, error)
             VALUES ($1, $2, $3, $4, 'contact_created', $5, $6, 120, 'ok', $7)",
        )
        .bind(tenant)
        .bind(id)
        .bind(webhook_id)
        .bind(Uuid::now_v7())
        .bind(attempt)
        .bind(if attempt < 7 { 500 } else { 200 })
        .bind((attempt < 7).then_some("HTTP 500"))
        .execute(&app.owner)
        .await
        .unwrap();
    }
    sqlx::query(
        "INSERT INTO webhook_logs (tenant_id, id, webhook_id, event_id, event_type, attempt)
         VALUES ($1, $2, $3, $4, 'contact_created', 1)",
    )
    .bind(tenant)
    .bind(Uuid::now_v7())
    .bind(other_id)
    .bind(Uuid::now_v7())
    .execute(&app.owner)
    .await
    .unwrap();
    log_ids.reverse(); // newest first

    let newest = alice.get(&format!("{path}/logs?limit=1")).await;
    let newest = newest.ok(200);
    let entry = &newest["items"][0];
    assert_eq!(entry["id"], log_ids[0]);
    assert_eq!(entry["webhookId"], webhook_id.to_string());
    assert_eq!(entry["eventType"], "contact_created");
    assert_eq!(entry["attempt"], 7);
    assert_eq!(entry["statusCode"], 200);
    assert_eq!(entry["durationMs"], 120);
    assert_eq!(entry["responseBody"], "ok");
    assert_eq!(entry["error"], Value::Null);
    assert!(entry["createdAt"].is_string());
    assert!(newest["nextCursor"].is_string());

    let mut seen = Vec::new();
    let mut page_path = format!("{path}/logs?limit=3");
    loop {
        let page = alice.get(&page_path).await;
        let page = page.ok(200);
        for item in page["items"].as_array().unwrap() {
            seen.push(item["id"].as_str().unwrap().to_owned());
        }
        match page["nextCursor"].as_str() {
            Some(cursor) => page_path = format!("{path}/logs?limit=3&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(
        seen, log_ids,
        "every log of this webhook once, newest first"
    );

    let by_offset = alice.get(&format!("{path}/logs?limit=2&offset=6")).await;
    let by_offset = by_offset.ok(200);
    assert_eq!(by_offset["total"], 7);
    assert_eq!(by_offset["items"].as_array().unwrap().len(), 1);
    assert_eq!(by_offset["items"][0]["id"], log_ids[6]);

    // Another tenant cannot read them, even knowing the webhook's id.
    let bob_tenant = app.tenant("bob").await;
    app.user("bob", bob_tenant)
        .get(&format!("{path}/logs"))
        .await
        .problem(404);
    // An unknown webhook is 404, not an empty page.
    alice
        .get(&format!("/api/webhooks/{}/logs", Uuid::now_v7()))
        .await
        .problem(404);
}
