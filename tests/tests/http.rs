//! The HTTP surface: request ids, problem documents, locales, health, OpenAPI.

use herald::api::routes;
use herald_tests::{TestApp, read};
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("alice").await;
    let alice = app.user("alice", tenant);
    let replies = [
        read(app.request(Method::GET, "/health").send().await.unwrap()).await,
        read(
            app.request(Method::GET, "/api/contacts")
                .send()
                .await
                .unwrap(),
        )
        .await,
        read(
            app.request(Method::GET, "/no/such/route")
                .send()
                .await
                .unwrap(),
        )
        .await,
        alice.get("/api/contacts").await,
        alice.post("/api/contacts", &json!({ "name": "X" })).await,
    ];
    let mut ids = std::collections::HashSet::new();
    for reply in &replies {
        let id = reply.headers["x-request-id"].to_str().unwrap().to_owned();
        assert!(id.len() >= 16, "{id}");
        if reply.content_type() == "application/problem+json" {
            assert_eq!(reply.json["requestId"], id, "the problem names its request");
        }
        assert!(ids.insert(id), "request ids repeat");
    }
}

#[tokio::test]
async fn unknown_routes_are_problems_and_titles_follow_accept_language() {
    let app = TestApp::spawn().await;
    let reply = read(
        app.request(Method::GET, "/api/nothing")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        reply.problem(404)["type"],
        "https://herald.dev/problems/route-not-found"
    );
    assert_eq!(reply.json["instance"], "/api/nothing");
    // A known path with a method it does not serve.
    read(
        app.request(Method::PUT, "/api/contacts")
            .send()
            .await
            .unwrap(),
    )
    .await
    .problem(404);

    let spanish = read(
        app.request(Method::GET, "/api/contacts")
            .header("Accept-Language", "es-ES,es;q=0.9,en;q=0.5")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(spanish.problem(401)["title"], "Se requiere autenticación");
    assert_eq!(spanish.headers["content-language"], "es");
    let english = read(
        app.request(Method::GET, "/api/contacts")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(english.problem(401)["title"], "Authentication required");
    // Same stable type whatever the language.
    assert_eq!(spanish.json["type"], english.json["type"]);
}

#[tokio::test]
async fn health_and_locales() {
    let app = TestApp::spawn().await;
    let health = read(app.request(Method::GET, "/health").send().await.unwrap()).await;
    assert_eq!(health.ok(200)["status"], "ok");
    assert_eq!(health.json["database"], "ok");
    let locales = read(
        app.request(Method::GET, "/api/locales")
            .send()
            .await
            .unwrap(),
    )
    .await;
    let codes: Vec<_> = locales.ok(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["code"].clone())
        .collect();
    assert_eq!(codes, vec![json!("en"), json!("es")]);
}

#[tokio::test]
async fn health_reports_an_unreachable_database() {
    let app = TestApp::spawn_config(|c| {
        // Migrations run as the owner; the functions then point at a port nobody serves.
        c.app_database_url = Some("postgres://herald_app@127.0.0.1:1/none".into());
    })
    .await;
    let reply = read(app.request(Method::GET, "/health").send().await.unwrap()).await;
    assert_eq!(reply.ok(503)["database"], "unreachable");

    // And a data route answers 503 problem+json with Retry-After instead of hanging.
    let tenant = app.tenant("alice").await;
    let reply = app.user("alice", tenant).get("/api/contacts").await;
    reply.problem(503);
    assert_eq!(reply.headers["retry-after"], "1");
}

#[tokio::test]
async fn the_openapi_document_describes_every_route() {
    let app = TestApp::spawn().await;
    let doc = &app.openapi().await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for route in routes() {
        let op = &doc["paths"][route.path()][route.method().to_lowercase()];
        assert!(
            op.is_object(),
            "{} is missing from the OpenAPI document",
            route.key()
        );
        // Every error it can answer, and the tenant it runs in.
        for status in ["4XX", "503"] {
            assert!(
                op["responses"][status].is_object(),
                "{} documents no {status}",
                route.key()
            );
        }
        // Every write takes a body, except the actions on a resource that exists.
        let action = [
            "/start", "/pause", "/resume", "/cancel", "/secret", "/test", "/retry",
        ]
        .iter()
        .any(|a| route.path().ends_with(a));
        if matches!(route.method(), "POST" | "PUT" | "PATCH") {
            assert_eq!(
                op["requestBody"].is_object(),
                !action,
                "{} request body",
                route.key()
            );
        }
        let names_tenant = op["parameters"].as_array().is_some_and(|ps| {
            ps.iter()
                .any(|p| p["name"] == "X-Tenant-ID" && p["in"] == "header")
        });
        assert_eq!(
            names_tenant,
            !route.tenantless,
            "{} X-Tenant-ID",
            route.key()
        );
    }
    let documented: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|p| p.as_object().unwrap().len())
        .sum();
    assert_eq!(
        documented,
        routes().count(),
        "the document has operations no route serves"
    );
    // A create links to the operations on what it made.
    let links = &doc["paths"]["/api/contacts"]["post"]["responses"]["201"]["links"];
    for (name, pointer) in [
        ("GET", "#/paths/~1api~1contacts~1{id}/get"),
        ("PATCH", "#/paths/~1api~1contacts~1{id}/patch"),
        ("DELETE", "#/paths/~1api~1contacts~1{id}/delete"),
    ] {
        assert_eq!(links[name]["operationRef"], pointer);
        assert_eq!(links[name]["parameters"]["id"], "$response.body#/id");
    }
    assert!(doc["components"]["schemas"]["ProblemDocument"].is_object());
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}

/// A pooled connection the server closed (a restart, a proxy's idle timeout, a Lambda
/// container thawed after minutes) is checked before use once it has idled, and replaced.
#[tokio::test]
async fn pooled_connections_the_server_closed_are_replaced() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("alice").await;
    let alice = app.user("alice", tenant);
    alice.get("/api/contacts").await.ok(200);
    let killed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = $1 AND usename = 'herald_app') t",
    )
    .bind(&app.db_name)
    .fetch_one(&app.owner)
    .await
    .unwrap();
    assert!(killed > 0, "the server held pooled connections");
    // Idling past the threshold is the condition under test, not synchronisation.
    tokio::time::sleep(
        herald::db::Database::PING_IF_IDLE_FOR + std::time::Duration::from_millis(200),
    )
    .await;
    for _ in 0..killed + 1 {
        alice.get("/api/contacts").await.ok(200);
    }
}
