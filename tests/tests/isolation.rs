//! Tenant isolation: through the API, and in the database itself.

use herald_tests::TestApp;
use serde_json::json;
use uuid::Uuid;

#[tokio::test]
async fn tenant_b_cannot_see_or_touch_tenant_a_contacts() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alice").await;
    let b = app.tenant("bob").await;
    let alice = app.user("alice", a);
    let bob = app.user("bob", b);

    let contact = alice.contact("Ada", "+14155552671").await;
    let id = contact["id"].as_str().unwrap();
    let path = format!("/api/contacts/{id}");

    // List and search show nothing of A's.
    let list = bob.get("/api/contacts").await;
    assert_eq!(list.ok(200)["items"], json!([]));
    let search = bob.get("/api/contacts?search=Ada&offset=0").await;
    assert_eq!(search.ok(200)["total"], 0);

    // A's id answers exactly as an id that never existed: 404, nothing more.
    let unknown = bob.get(&format!("/api/contacts/{}", Uuid::now_v7())).await;
    let unknown = unknown.problem(404);
    for reply in [
        bob.get(&path).await,
        bob.patch(&path, &json!({ "name": "Mallory" })).await,
        bob.delete(&path).await,
    ] {
        let problem = reply.problem(404);
        assert_eq!(problem["type"], unknown["type"]);
        assert_eq!(problem["detail"], unknown["detail"]);
    }

    // Importing A's phone into B creates B's own contact; A's stays untouched and unrevealed.
    let import = bob
        .post(
            "/api/contacts/import",
            &json!([{ "name": "Copy", "phone": "+14155552671" }]),
        )
        .await;
    assert_eq!(import.ok(200)["imported"], 1);
    assert_eq!(import.json["duplicates"], json!([]));

    let still = alice.get(&path).await;
    assert_eq!(still.ok(200)["name"], "Ada");
    assert_eq!(app.live_contacts(a).await, 1);
    assert_eq!(app.live_contacts(b).await, 1);
    // B's failed writes announced nothing in A.
    assert_eq!(app.events(a, "contact_updated").await, 0);
    assert_eq!(app.events(a, "contact_deleted").await, 0);
}

#[tokio::test]
async fn a_member_of_one_tenant_cannot_name_another() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alice").await;
    let b = app.tenant("bob").await;
    app.user("alice", a).contact("Ada", "+14155552671").await;

    // Alice names B in the header, the query string and the token's claim: 403 each time.
    let alice_in_b = app.user("alice", b);
    alice_in_b.get("/api/contacts").await.problem(403);
    let by_query = app.user("alice", a);
    let reply = by_query
        .send(
            by_query
                .app
                .request(reqwest::Method::GET, &format!("/api/contacts?tenantId={b}"))
                .bearer_auth(&by_query.token),
        )
        .await;
    reply.problem(403);
    let claim = herald_tests::token("alice", Some(b), 600);
    let reply = herald_tests::read(
        app.request(reqwest::Method::GET, "/api/contacts")
            .bearer_auth(claim)
            .send()
            .await
            .unwrap(),
    )
    .await;
    reply.problem(403);

    // A tenant that does not exist answers like one Alice is not a member of.
    app.user("alice", Uuid::now_v7())
        .get("/api/contacts")
        .await
        .problem(403);
}

/// Connects as the application role to the test's database.
async fn app_role(app: &TestApp) -> sqlx::PgPool {
    sqlx::PgPool::connect(&app.app_role_url())
        .await
        .expect("herald_app connects")
}

/// A transaction of the application role with `tenant` set, as the functions open them.
async fn in_tenant(
    pool: &sqlx::PgPool,
    tenant: Uuid,
) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
        .bind(tenant.to_string())
        .execute(&mut *tx)
        .await
        .unwrap();
    tx
}

#[tokio::test]
async fn the_application_role_sees_no_rows_without_a_tenant() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alice").await;
    app.user("alice", a).contact("Ada", "+14155552671").await;
    assert!(app.all_events().await > 0);

    let pool = app_role(&app).await;
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relname <> '_sqlx_migrations'",
    )
    .fetch_all(&app.owner)
    .await
    .unwrap();
    assert!(tables.len() >= 4, "tables: {tables:?}");

    for table in &tables {
        let sql = format!("SELECT count(*) FROM {table}");
        // As the application role, with no tenant set: nothing, and no error either.
        let rows: Result<i64, _> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.clone()))
            .fetch_one(&pool)
            .await;
        match rows {
            Ok(n) => assert_eq!(n, 0, "{table} leaked {n} rows without a tenant"),
            // No grant at all (the outbox is insert-only for the app) is just as closed.
            Err(e) => assert!(e.to_string().contains("permission denied"), "{table}: {e}"),
        }
    }

    // Every tenant table enables and forces RLS.
    let unforced: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relname <> '_sqlx_migrations'
           AND NOT (c.relrowsecurity AND c.relforcerowsecurity)",
    )
    .fetch_all(&app.owner)
    .await
    .unwrap();
    assert!(
        unforced.is_empty(),
        "tables without forced RLS: {unforced:?}"
    );

    // A session-level tenant is never what the app uses, but even a transaction-level one
    // set for A shows A's rows only.
    let mut tx = in_tenant(&pool, a).await;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM contacts")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(n, 1);
    tx.commit().await.unwrap();
    let after: i64 = sqlx::query_scalar("SELECT count(*) FROM contacts")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(after, 0, "the tenant outlived its transaction");
}

#[tokio::test]
async fn the_application_role_is_neither_superuser_nor_owner() {
    let app = TestApp::spawn().await;
    let (superuser, bypass): (bool, bool) =
        sqlx::query_as("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = 'herald_app'")
            .fetch_one(&app.owner)
            .await
            .unwrap();
    assert!(!superuser, "herald_app is a superuser");
    assert!(!bypass, "herald_app bypasses RLS");

    let owned: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner
         WHERE r.rolname = 'herald_app'",
    )
    .fetch_all(&app.owner)
    .await
    .unwrap();
    assert!(owned.is_empty(), "herald_app owns {owned:?}");

    // Least privilege: contacts are soft-deleted, so the app may not DELETE them.
    let can_delete: bool =
        sqlx::query_scalar("SELECT has_table_privilege('herald_app', 'contacts', 'DELETE')")
            .fetch_one(&app.owner)
            .await
            .unwrap();
    assert!(!can_delete);

    // Tenant writes through the app role cannot land in another tenant (WITH CHECK).
    let a = app.tenant("alice").await;
    let b = app.tenant("bob").await;
    let pool = app_role(&app).await;
    let mut tx = in_tenant(&pool, a).await;
    let err = sqlx::query(
        "INSERT INTO contacts (tenant_id, id, name, phone) VALUES ($1, $2, 'x', '+14155552671')",
    )
    .bind(b)
    .bind(Uuid::now_v7())
    .execute(&mut *tx)
    .await
    .unwrap_err();
    assert!(err.to_string().contains("row-level security"), "{err}");
}
