//! Metrics: the query counter sees every statement, and the EMF record is well formed.

use herald::metrics::{self, Invocation, Record};
use herald_tests::TestApp;
use std::time::Duration;

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
        slow_queries: 0,
        tenant_id: Some(uuid::Uuid::now_v7()),
    };
    let record = Record {
        function: "contacts",
        route: "GET /api/contacts",
        request_id: "abc",
        status: 404,
        latency: Duration::from_millis(12),
        cold_start: true,
        invocation: &invocation,
    }
    .to_emf(1_795_000_000_000);

    let aws = &record["_aws"];
    assert_eq!(aws["Timestamp"], 1_795_000_000_000u64);
    let directives = aws["CloudWatchMetrics"].as_array().unwrap();
    assert_eq!(directives.len(), 1);
    let directive = &directives[0];
    assert_eq!(directive["Namespace"], "Herald");
    let metrics = directive["Metrics"].as_array().unwrap();
    assert!(metrics.len() <= 100);
    for metric in metrics {
        let name = metric["Name"].as_str().unwrap();
        assert!(
            record[name].is_number(),
            "metric {name} has no numeric value"
        );
    }
    for set in directive["Dimensions"].as_array().unwrap() {
        let set = set.as_array().unwrap();
        assert!(set.len() <= 30);
        for dimension in set {
            assert!(
                record[dimension.as_str().unwrap()].is_string(),
                "dimension {dimension} missing"
            );
        }
    }
    assert_eq!(record["Status4xx"], 1);
    assert_eq!(record["Status2xx"], 0);
    assert_eq!(record["ColdStart"], 1);
    assert_eq!(record["DbQueries"], 4);
    // The tenant is a property, never a dimension.
    assert!(record["tenantId"].is_string());
    assert!(!directive["Dimensions"].to_string().contains("tenant"));
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
    .unwrap();

    let ((), invocation) = metrics::measure(async {
        let mut tx = db.begin_tenant(tenant, "alice").await.unwrap().unwrap();
        sqlx::query("SELECT pg_sleep(0.001)")
            .execute(tx.conn())
            .await
            .unwrap();
        sqlx::query("SELECT pg_sleep(0.08)")
            .execute(tx.conn())
            .await
            .unwrap();
        tx.commit().await.unwrap();
    })
    .await;
    assert_eq!(invocation.slow_queries, 1, "{invocation:?}");
    assert!(
        invocation.db_queries >= 4,
        "BEGIN, enter_tenant, two sleeps, COMMIT: {invocation:?}"
    );
    assert_eq!(invocation.tenant_id, Some(tenant));
}
