//! The outbox: one event per committed write, none for a rolled-back one.

use herald::db::Database;
use herald::events::{self, EventType};
use herald_tests::TestApp;
use serde_json::{Value, json};

#[tokio::test]
async fn every_committed_write_has_exactly_one_event() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("alice").await;
    let alice = app.user("alice", tenant);

    let contact = alice.contact("Ada", "+14155552671").await;
    let id = contact["id"].as_str().unwrap();
    let path = format!("/api/contacts/{id}");
    alice
        .patch(&path, &json!({ "name": "Ada L." }))
        .await
        .ok(200);
    alice
        .patch(&path, &json!({ "optedOut": true }))
        .await
        .ok(200);
    assert_eq!(alice.delete(&path).await.status, 204);

    let events: Vec<(String, Value)> =
        sqlx::query_as("SELECT type, payload FROM outbox_events WHERE tenant_id = $1 ORDER BY seq")
            .bind(tenant)
            .fetch_all(&app.owner)
            .await
            .unwrap();
    let types: Vec<&str> = events.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        types,
        [
            "contact_created",
            "contact_updated",
            "contact_updated",
            "contact_deleted"
        ]
    );
    // Each carries the resource as the API shows it.
    assert!(events.iter().all(|(_, p)| p["id"] == id));
    assert_eq!(events[0].1, contact);
    assert_eq!(events[1].1["name"], "Ada L.");
    assert!(events[3].1["deletedAt"].is_string());

    // Failed writes (conflict, validation, not found) announce nothing.
    alice
        .post(
            "/api/contacts",
            &json!({ "name": "B", "phone": "+14155552671", "email": "x" }),
        )
        .await
        .problem(422);
    alice.contact("C", "+14155552672").await;
    alice
        .post(
            "/api/contacts",
            &json!({ "name": "D", "phone": "+14155552672" }),
        )
        .await
        .problem(409);
    alice.delete(&path).await.problem(404);
    assert_eq!(app.events(tenant, "contact_created").await, 2);
    assert_eq!(app.all_events().await, 5);
}

#[tokio::test]
async fn a_rolled_back_write_has_no_event() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("alice").await;
    let db = app_role_db(&app, 2);

    // The write and its event, in one tenant transaction.
    let new = ada();
    let create = async || {
        let mut tx = db
            .begin_tenant(tenant, "alice", "test")
            .await
            .unwrap()
            .expect("alice is a member");
        let contact = herald::contacts::store::insert(&mut tx, &new)
            .await
            .unwrap();
        events::emit(&mut tx, EventType::ContactCreated, &contact)
            .await
            .unwrap();
        tx
    };

    // Dropped without commit: neither the contact nor its event.
    drop(create().await);
    assert_eq!(app.live_contacts(tenant).await, 0);
    assert_eq!(app.all_events().await, 0);

    // Committed: one of each.
    create().await.commit().await.unwrap();
    assert_eq!(app.live_contacts(tenant).await, 1);
    assert_eq!(app.all_events().await, 1);

    // Not a member: no transaction at all.
    assert!(
        db.begin_tenant(tenant, "mallory", "test")
            .await
            .unwrap()
            .is_none()
    );
}

/// A read route's transaction is `READ ONLY`: a write that slipped into one is refused and
/// leaves nothing. Its end goes out after the response, yet the session is back to idle
/// before anyone else can take it.
#[tokio::test]
async fn a_read_transaction_refuses_writes_and_ends_without_a_commit() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("alice").await;
    let db = app_role_db(&app, 1);
    let new = ada();

    let mut tx = db
        .begin_tenant_read_only(tenant, "alice", "test")
        .await
        .unwrap()
        .expect("alice is a member");
    let refused = sqlx::query(
        "INSERT INTO contacts (tenant_id, id, name, phone) VALUES ($1, $2, 'Ada', '+14155552671')",
    )
    .bind(tenant)
    .bind(uuid::Uuid::now_v7())
    .execute(tx.conn())
    .await
    .expect_err("a read-only transaction takes no writes");
    let code = refused.as_database_error().and_then(|e| e.code());
    assert_eq!(code.as_deref(), Some("25006"), "{refused}");
    drop(tx);
    assert_eq!(app.live_contacts(tenant).await, 0);

    // A read that "commits" gives its one connection back outside any transaction: the next
    // transaction on it starts clean and sees its own tenant.
    let tx = db
        .begin_tenant_read_only(tenant, "alice", "test")
        .await
        .unwrap()
        .unwrap();
    tx.commit().await.unwrap();
    let mut tx = db
        .begin_tenant(tenant, "alice", "test")
        .await
        .unwrap()
        .unwrap();
    let read_only: String = sqlx::query_scalar("SELECT current_setting('transaction_read_only')")
        .fetch_one(tx.conn())
        .await
        .unwrap();
    assert_eq!(
        read_only, "off",
        "the next transaction is a new, writable one"
    );
    herald::contacts::store::insert(&mut tx, &new)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(app.live_contacts(tenant).await, 1);
}

/// A pool of `connections` for the application role, beside the server's.
fn app_role_db(app: &TestApp, connections: u32) -> Database {
    Database::connect_lazy(
        &app.app_role_url(),
        connections,
        std::time::Duration::from_secs(1),
        "test",
    )
    .unwrap()
}

fn ada() -> herald::contacts::input::NewContact {
    let input: herald::contacts::input::CreateContact =
        serde_json::from_value(json!({ "name": "Ada", "phone": "+14155552671" })).unwrap();
    herald::contacts::input::NewContact::parse(input).unwrap()
}
