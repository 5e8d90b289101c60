//! Lists keep their index plan on fresh data: right after a bulk write into a database whose
//! statistics have never seen the rows (an import, a bulk add to a group, a campaign's
//! messages), the first page walks the list's index newest first instead of fetching every
//! row and sorting them. Checked on the plan PostgreSQL chooses for the very statement the
//! list sends, as the application role in the tenant, not on timings.

mod engine;

use std::time::Duration;

use herald::domain::{Limit, Offset};
use herald::engine::materialize::{self, Step};
use herald::messages::MessageStatus;
use herald_tests::{TestApp, User};
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection, Postgres, QueryBuilder};
use uuid::Uuid;

/// Rows per bulk request: three of them add 15,000, well past the planner's first page.
const BATCH: usize = 5_000;

fn limit() -> Limit {
    Limit::parse(Some("50")).unwrap()
}

/// Imports `n` contacts through `POST /api/contacts/import`, phones numbered from `first`.
async fn import(user: &User<'_>, first: usize, n: usize) {
    let rows: Vec<Value> = (first..first + n)
        .map(|i| json!({ "name": format!("Contact {i}"), "phone": format!("+14152{i:06}") }))
        .collect();
    let report = user.post("/api/contacts/import", &Value::Array(rows)).await;
    assert_eq!(report.ok(200)["imported"], n);
}

/// The plan PostgreSQL chooses for the statement `push` writes, run as `herald_app` inside
/// `tenant` with its parameters bound, as the list runs it.
async fn plan(
    app: &TestApp,
    tenant: Uuid,
    push: impl FnOnce(&mut QueryBuilder<Postgres>),
) -> Value {
    let mut conn = PgConnection::connect(&app.app_role_url()).await.unwrap();
    let mut tx = conn.begin().await.unwrap();
    sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
        .bind(tenant.to_string())
        .execute(&mut *tx)
        .await
        .unwrap();
    let mut explain = QueryBuilder::<Postgres>::new("EXPLAIN (FORMAT JSON) ");
    push(&mut explain);
    let plan: Value = explain
        .build_query_scalar()
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    plan[0]["Plan"].clone()
}

/// Every node of `plan`, depth first.
fn nodes(plan: &Value) -> Vec<&Value> {
    let mut all = vec![plan];
    if let Some(children) = plan["Plans"].as_array() {
        for child in children {
            all.extend(nodes(child));
        }
    }
    all
}

/// Asserts that `plan` reads `table` only by walking one of `indexes` in order, sorts
/// nothing, and expects at least a tenth of the `rows` the table holds for the page: an
/// estimate of a row or two is what lets a sort look cheaper than the walk (at this size
/// PostgreSQL may still walk; on a larger table it would not).
fn assert_walks(plan: &Value, table: &str, indexes: &[&str], rows: u64) {
    let all = nodes(plan);
    let shown = serde_json::to_string_pretty(plan).unwrap();
    assert!(
        !all.iter()
            .any(|n| n["Node Type"].as_str().unwrap_or("").contains("Sort")),
        "the plan sorts:\n{shown}"
    );
    let scans: Vec<&&Value> = all.iter().filter(|n| n["Relation Name"] == table).collect();
    assert!(
        !scans.is_empty(),
        "the plan does not read {table}:\n{shown}"
    );
    for scan in &scans {
        assert!(
            matches!(
                scan["Node Type"].as_str(),
                Some("Index Scan" | "Index Only Scan")
            ),
            "{table} is not walked by an index:\n{shown}"
        );
        assert!(
            indexes.contains(&scan["Index Name"].as_str().unwrap_or("")),
            "{table} is walked by another index:\n{shown}"
        );
    }
    let expected = scans
        .iter()
        .filter_map(|s| s["Plan Rows"].as_f64())
        .fold(0.0, f64::max);
    assert!(
        expected * 10.0 >= rows as f64,
        "the planner expects {expected} of the {rows} rows of {table}:\n{shown}"
    );
}

#[tokio::test]
async fn the_first_page_after_a_large_import_walks_the_index() {
    let app = TestApp::spawn().await;
    // Another tenant's contacts, loaded before any analysis: at this size PostgreSQL guesses
    // two rows for a tenant it knows nothing of, and a bitmap scan and a sort of two rows
    // look cheaper than the index (issue 21's first page after an import).
    let other = app.tenant("bob").await;
    sqlx::query(
        "INSERT INTO contacts (tenant_id, id, name, phone)
         SELECT $1, gen_random_uuid(), 'Other ' || i, '+1555' || lpad(i::text, 7, '0')
         FROM generate_series(1, 100000) AS i",
    )
    .bind(other)
    .execute(&app.owner)
    .await
    .unwrap();
    let tenant = app.tenant("alice").await;
    let alice = app.user("alice", tenant);
    for i in 0..3 {
        import(&alice, i * BATCH, BATCH).await;
    }
    let imported = 3 * BATCH as u64;

    let query = herald::contacts::store::ListQuery {
        limit: limit(),
        offset: None,
        cursor: None,
        search: None,
        group: None,
    };
    let first = plan(&app, tenant, |sql| {
        herald::contacts::store::push_page(sql, tenant, &query)
    })
    .await;
    // The partial index of live contacts, or the primary key with the live ones filtered:
    // both are the tenant's contacts in id order.
    assert_walks(
        &first,
        "contacts",
        &["contacts_live", "contacts_pkey"],
        imported,
    );

    // With an offset (the page after the first 50), the same walk.
    let offset = herald::contacts::store::ListQuery {
        offset: Some(Offset::parse("50").unwrap()),
        ..query
    };
    let second = plan(&app, tenant, |sql| {
        herald::contacts::store::push_page(sql, tenant, &offset)
    })
    .await;
    assert_walks(
        &second,
        "contacts",
        &["contacts_live", "contacts_pkey"],
        imported,
    );
}

#[tokio::test]
async fn a_group_s_members_after_bulk_adds_walk_the_index() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("alice").await;
    let alice = app.user("alice", tenant);
    // The contacts are written as the owner: this test is about the group's own rows.
    let everyone = engine::audience(&app, tenant, 3 * BATCH as i64, 0, 0).await;
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT contact_id::text FROM group_contacts WHERE group_id = $1 ORDER BY contact_id",
    )
    .bind(everyone)
    .fetch_all(&app.owner)
    .await
    .unwrap();
    let group: Uuid = alice
        .post("/api/groups", &json!({ "name": "Bulk" }))
        .await
        .ok(201)["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    for chunk in ids.chunks(BATCH) {
        let added = alice
            .post(
                &format!("/api/groups/{group}/contacts"),
                &json!({ "contactIds": chunk }),
            )
            .await;
        assert_eq!(added.ok(200)["added"], chunk.len());
    }

    let members = plan(&app, tenant, |sql| {
        herald::groups::store::push_members_page(sql, tenant, group, limit(), None)
    })
    .await;
    let added = ids.len() as u64;
    assert_walks(&members, "group_contacts", &["group_contacts_pkey"], added);

    // `GET /api/contacts?groupId=…` pages through the same walk.
    let query = herald::contacts::store::ListQuery {
        limit: limit(),
        offset: None,
        cursor: None,
        search: None,
        group: Some(group),
    };
    let by_group = plan(&app, tenant, |sql| {
        herald::contacts::store::push_page(sql, tenant, &query)
    })
    .await;
    assert_walks(&by_group, "group_contacts", &["group_contacts_pkey"], added);
}

#[tokio::test]
async fn a_started_campaign_s_messages_walk_the_index() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("alice").await;
    let alice = app.user("alice", tenant);
    let group = engine::audience(&app, tenant, 3 * BATCH as i64, 0, 0).await;
    let template = engine::template(&alice, "Hi {{ contact.name }}").await;
    let campaign = engine::campaign(&alice, &template, group).await;
    alice
        .post(&format!("/api/campaigns/{campaign}/start"), &json!({}))
        .await
        .ok(200);
    let campaign: Uuid = campaign.parse().unwrap();

    // Materialised as the sender does it, in its batches, and nothing sent.
    let db = herald::db::Database::connect_lazy(
        &app.app_role_url(),
        2,
        Duration::from_secs(5),
        "test-plans",
    )
    .unwrap();
    let batch = herald::engine::Tuning::default().materialize_batch;
    loop {
        let mut tx = db.begin_service(tenant, "test").await.unwrap();
        let step = materialize::step(&mut tx, campaign, batch).await.unwrap();
        tx.commit().await.unwrap();
        if step == Step::Done {
            break;
        }
    }
    let counts = engine::message_counts(&app, &campaign.to_string()).await;
    assert_eq!(counts.get("queued"), Some(&(3 * BATCH as i64)));
    let queued = 3 * BATCH as u64;

    let query = |status: Option<MessageStatus>, campaign: Option<Uuid>| {
        herald::messages::store::ListQuery {
            limit: limit(),
            offset: None,
            cursor: None,
            campaign_id: campaign,
            contact_id: None,
            status,
            from: None,
            to: None,
        }
    };
    // Every message of the tenant is of this campaign and queued, so walking the tenant's
    // messages newest first is as good as walking the campaign's: any index, but in order.
    let indexes = [
        "messages_by_campaign",
        "messages_by_status",
        "messages_pending",
        "messages_recent",
        "messages_pkey",
    ];
    // By campaign: one ordered range per status, merged.
    let by_campaign = query(None, Some(campaign));
    let page = plan(&app, tenant, |sql| {
        herald::messages::store::push_page(sql, tenant, &by_campaign)
    })
    .await;
    assert_walks(&page, "messages", &indexes, queued);

    let queued_of_campaign = query(Some(MessageStatus::Queued), Some(campaign));
    let page = plan(&app, tenant, |sql| {
        herald::messages::store::push_page(sql, tenant, &queued_of_campaign)
    })
    .await;
    assert_walks(&page, "messages", &indexes, queued);

    // The tenant's messages by status, and all of them newest first.
    let queued_of_tenant = query(Some(MessageStatus::Queued), None);
    let page = plan(&app, tenant, |sql| {
        herald::messages::store::push_page(sql, tenant, &queued_of_tenant)
    })
    .await;
    assert_walks(&page, "messages", &indexes, queued);
}

/// `app.analyze_if_unseen` runs as the tables' owner, so it does only what it is for: three
/// tables, keys of the caller's tenant, nothing below its floor, nothing for PUBLIC, and
/// it skips a table another transaction is analysing instead of waiting for it.
#[tokio::test]
async fn the_analysis_function_is_narrow() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.tenant("alice").await, app.tenant("bob").await);
    let load = |tenant: Uuid| {
        sqlx::query(
            "INSERT INTO contacts (tenant_id, id, name, phone)
             SELECT $1, gen_random_uuid(), 'C ' || i, '+1555' || lpad(i::text, 7, '0')
             FROM generate_series(1, 5000) AS i",
        )
        .bind(tenant)
        .execute(&app.owner)
    };
    load(a).await.unwrap();
    let bobs_group = Uuid::now_v7();
    sqlx::query("INSERT INTO groups (tenant_id, id, name) VALUES ($1, $2, 'Bob''s')")
        .bind(b)
        .bind(bobs_group)
        .execute(&app.owner)
        .await
        .unwrap();
    let public: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_proc, aclexplode(proacl) acl
                        WHERE proname = 'analyze_if_unseen' AND acl.grantee = 0)",
    )
    .fetch_one(&app.owner)
    .await
    .unwrap();
    assert!(!public, "PUBLIC may execute app.analyze_if_unseen");
    let mut app_role = PgConnection::connect(&app.app_role_url()).await.unwrap();
    for sql in [
        "SELECT app.planned_rows('contacts', gen_random_uuid())",
        "SELECT count(*) FROM app.unrepresented_keys",
    ] {
        let err = sqlx::query(sql).execute(&mut app_role).await.unwrap_err();
        let code = err.as_database_error().and_then(|e| e.code());
        assert_eq!(code.as_deref(), Some("42501"), "{sql}");
    }

    // Each call in a transaction of its own, as herald_app in `tenant` (none: no tenant).
    let mut first = PgConnection::connect(&app.app_role_url()).await.unwrap();
    let mut second = PgConnection::connect(&app.app_role_url()).await.unwrap();
    async fn call(
        conn: &mut PgConnection,
        tenant: Option<Uuid>,
        table: &str,
        key: Option<Uuid>,
        rows: i64,
    ) -> Result<bool, sqlx::Error> {
        sqlx::query("BEGIN").execute(&mut *conn).await?;
        sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
            .bind(tenant.map(|t| t.to_string()).unwrap_or_default())
            .execute(&mut *conn)
            .await?;
        sqlx::query_scalar("SELECT app.analyze_if_unseen($1, $2, $3)")
            .bind(table)
            .bind(key)
            .bind(rows)
            .fetch_one(&mut *conn)
            .await
    }
    async fn end(conn: &mut PgConnection) {
        sqlx::query("ROLLBACK").execute(&mut *conn).await.unwrap();
    }

    let refused = call(&mut first, Some(a), "tenants", None, 5000).await;
    let err = refused.unwrap_err();
    assert_eq!(
        err.as_database_error().and_then(|e| e.code()).as_deref(),
        Some("22023")
    );
    end(&mut first).await;
    for (tenant, table, key, rows) in [
        (None, "contacts", None, 5000),
        (Some(a), "contacts", None, 999),
        (Some(a), "group_contacts", Some(bobs_group), 5000),
        (Some(a), "messages", Some(Uuid::now_v7()), 5000),
    ] {
        let analysed = call(&mut first, tenant, table, key, rows).await.unwrap();
        assert!(!analysed, "{tenant:?} {table} {key:?} {rows}");
        end(&mut first).await;
    }

    // Alice's 5,000 contacts are unknown to the planner: analysed, and the table stays
    // locked for analysis until her transaction ends. Meanwhile Bob's call skips it.
    assert!(
        call(&mut first, Some(a), "contacts", None, 5000)
            .await
            .unwrap()
    );
    assert!(
        !call(&mut second, Some(b), "contacts", None, 5000)
            .await
            .unwrap()
    );
    end(&mut second).await;
    sqlx::query("COMMIT").execute(&mut first).await.unwrap();
    // Known now: nothing to do for Alice's rows; Bob's, written since, are analysed.
    load(b).await.unwrap();
    assert!(
        !call(&mut first, Some(a), "contacts", None, 5000)
            .await
            .unwrap()
    );
    end(&mut first).await;
    assert!(
        call(&mut second, Some(b), "contacts", None, 5000)
            .await
            .unwrap()
    );
    end(&mut second).await;
}

/// When more tenants are common than the statistics keep, a small tenant stays out of them
/// however often the table is analysed: after one analysis in vain its bulk writes spend
/// no more.
#[tokio::test]
async fn an_analysis_in_vain_is_not_repeated() {
    let app = TestApp::spawn().await;
    let tenants = [
        app.tenant("alice").await,
        app.tenant("carol").await,
        app.tenant("bob").await,
    ];
    // Room for two tenants in the statistics, two of 5,000 contacts to fill it, and Bob's
    // 1,000 written since.
    sqlx::query("ALTER TABLE contacts ALTER COLUMN tenant_id SET STATISTICS 2")
        .execute(&app.owner)
        .await
        .unwrap();
    let load = |tenant: Uuid, rows: i32| {
        sqlx::query(
            "INSERT INTO contacts (tenant_id, id, name, phone)
             SELECT $1, gen_random_uuid(), 'C ' || i, '+1555' || lpad(i::text, 7, '0')
             FROM generate_series(1, $2) AS i",
        )
        .bind(tenant)
        .bind(rows)
        .execute(&app.owner)
    };
    load(tenants[0], 5000).await.unwrap();
    load(tenants[1], 5000).await.unwrap();
    sqlx::query("ANALYZE contacts")
        .execute(&app.owner)
        .await
        .unwrap();
    load(tenants[2], 1000).await.unwrap();

    let mut conn = PgConnection::connect(&app.app_role_url()).await.unwrap();
    async fn analyse(conn: &mut PgConnection, tenant: Uuid) -> bool {
        let mut tx = conn.begin().await.unwrap();
        sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
            .bind(tenant.to_string())
            .execute(&mut *tx)
            .await
            .unwrap();
        let analysed = sqlx::query_scalar("SELECT app.analyze_if_unseen('contacts', NULL, 1000)")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        analysed
    }
    assert!(
        analyse(&mut conn, tenants[2]).await,
        "Bob's rows are unknown: analysed the first time"
    );
    assert!(
        !analyse(&mut conn, tenants[2]).await,
        "and Bob is still unknown: not again"
    );
}
