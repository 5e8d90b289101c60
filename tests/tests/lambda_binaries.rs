//! Every function binary, run as Lambda runs it: a process polling a Runtime API (the
//! emulator in tests/support), fed the event shapes AWS sends. This exercises each `main.rs`
//! (configuration from the environment, pool and verifier built once, the runtime loop), not
//! only the handlers that the in-process tests call.

use herald_tests::function_process::{FunctionProcess, function_names, http_event};
use herald_tests::runtime_api::Outcome;
use herald_tests::{TestApp, token};
use serde_json::{Value, json};
use std::time::Duration;

fn status(response: &Value) -> u64 {
    response["statusCode"]
        .as_u64()
        .expect("an API Gateway v2 response")
}

fn body(response: &Value) -> Value {
    serde_json::from_str(response["body"].as_str().unwrap_or("null")).unwrap_or(Value::Null)
}

/// One representative request of an HTTP function.
struct Probe {
    function: &'static str,
    method: &'static str,
    route: &'static str,
    path: &'static str,
    body: Option<Value>,
    status: u64,
}

const fn probe(
    function: &'static str,
    method: &'static str,
    route: &'static str,
    path: &'static str,
    status: u64,
) -> Probe {
    Probe {
        function,
        method,
        route,
        path,
        body: None,
        status,
    }
}

fn requests() -> Vec<Probe> {
    vec![
        probe(
            "campaigns",
            "GET",
            "GET /api/campaigns",
            "/api/campaigns",
            200,
        ),
        Probe {
            body: Some(json!({"name": "Ada", "phone": "+14155550100"})),
            ..probe(
                "contacts",
                "POST",
                "POST /api/contacts",
                "/api/contacts",
                201,
            )
        },
        Probe {
            body: Some(json!({"name": "VIP"})),
            ..probe("groups", "POST", "POST /api/groups", "/api/groups", 201)
        },
        probe(
            "contacts",
            "GET",
            "GET /api/contacts/{id}",
            "/api/contacts/0d9b1b8e-5a38-4ad4-a4c6-4d2f4f4c2b8e",
            404,
        ),
        probe("messages", "GET", "GET /api/messages", "/api/messages", 200),
        probe("system", "GET", "GET /health", "/health", 200),
        // Another function's path, sent to this one's URL.
        probe("system", "GET", "$default", "/api/contacts", 404),
        Probe {
            body: Some(json!({"name": "Hi", "body": "Hello {{ contact.name }}"})),
            ..probe(
                "templates",
                "POST",
                "POST /api/templates",
                "/api/templates",
                201,
            )
        },
        probe("tenants", "GET", "GET /api/tenants", "/api/tenants", 200),
        // The seed's procedures: every route, behind one proxy route.
        probe(
            "trpc",
            "GET",
            "ANY /api/trpc/{proxy+}",
            "/api/trpc/contacts.list",
            200,
        ),
        probe("webhooks", "GET", "GET /api/webhooks", "/api/webhooks", 200),
    ]
}
#[tokio::test]
async fn every_http_function_binary_answers_api_gateway_events() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("owner").await;
    let bearer = format!("Bearer {}", token("owner", None, 600));
    let tenant_header = tenant.to_string();
    let http_functions: Vec<&str> = requests().iter().map(|r| r.function).collect();
    for name in function_names() {
        if !http_functions.contains(&name.as_str()) {
            continue;
        }
        let function = FunctionProcess::deployed(&app, &name).await;
        for Probe {
            method,
            route,
            path,
            body: payload,
            status: expected,
            ..
        } in requests().into_iter().filter(|r| r.function == name)
        {
            let headers = [
                ("authorization", bearer.as_str()),
                ("x-tenant-id", tenant_header.as_str()),
            ];
            let event = http_event(method, route, path, &headers, payload.as_ref());
            let response = function.invoke(&event).await.response();
            assert_eq!(status(&response), expected, "{name}: {route}: {response}");
            if expected == 404 && route == "$default" {
                let detail = body(&response)["detail"].as_str().unwrap_or("").to_owned();
                assert!(detail.contains("the contacts function"), "{detail}");
            }
            // Function URLs and `cargo lambda watch` send `$default` and no path parameters:
            // the function matches method and path itself and answers the same.
            if method == "GET" {
                let event = http_event(method, "$default", path, &headers, None);
                let response = function.invoke(&event).await.response();
                assert_eq!(status(&response), expected, "{name}: $default {path}");
            }
            let request_id = event["requestContext"]["requestId"].as_str().unwrap();
            assert_eq!(
                response["headers"]["x-request-id"].as_str(),
                Some(request_id),
                "{name} returns API Gateway's request id"
            );
        }
        // The same process keeps serving: a second invocation without credentials is a 401
        // problem (health is public, so it answers 200 again).
        let probe = requests().into_iter().find(|r| r.function == name).unwrap();
        let event = http_event(
            probe.method,
            probe.route,
            probe.path,
            &[],
            probe.body.as_ref(),
        );
        let response = function.invoke(&event).await.response();
        let expected = if name == "system" { 200 } else { 401 };
        assert_eq!(
            status(&response),
            expected,
            "{name} unauthenticated: {response}"
        );
        if expected == 401 && name == "trpc" {
            // tRPC's error shape, the problem document inside `data`.
            let error = &body(&response)["error"];
            assert_eq!(error["code"], -32001);
            assert_eq!(error["data"]["status"], 401);
        } else if expected == 401 {
            assert_eq!(body(&response)["status"], 401);
        }
    }
    // The writes went through the application role under RLS into the tenant's rows.
    assert_eq!(app.live_contacts(tenant).await, 1);
}

#[tokio::test]
async fn a_malformed_event_is_reported_as_an_invocation_error_and_the_runtime_survives() {
    let app = TestApp::spawn().await;
    let mut function = FunctionProcess::deployed(&app, "system").await;
    let outcome = function.invoke(&json!({"unexpected": true})).await;
    assert!(
        matches!(outcome, Outcome::Error(ref e) if e["errorType"].is_string()),
        "{outcome:?}"
    );
    assert!(function.running(), "a bad event must not end the process");
    let health = http_event("GET", "GET /health", "/health", &[], None);
    assert_eq!(status(&function.invoke(&health).await.response()), 200);
}

#[tokio::test]
async fn a_function_without_its_configuration_fails_at_init_and_says_why() {
    let mut function = FunctionProcess::function("contacts", &[]).await;
    let status = function
        .exit(Duration::from_secs(30))
        .await
        .expect("a function that cannot be configured exits instead of serving");
    assert!(!status.success());
    let said = function.stderr();
    assert!(
        said.contains("DATABASE_URL") || said.contains("HERALD_JWT"),
        "{said}"
    );
    assert!(
        function.api.first_poll(Duration::ZERO).await.is_none(),
        "it never polled"
    );
}

#[tokio::test]
async fn the_migrate_function_migrates_an_empty_database_once_and_sets_the_app_password() {
    use sqlx::migrate::MigrateDatabase;
    let name = format!("herald_test_{}", uuid::Uuid::new_v4().simple());
    let owner_url = format!("{}/{name}", herald_tests::server_url());
    sqlx::Postgres::create_database(&owner_url).await.unwrap();
    let app_url = owner_url.replacen("postgres://postgres@", "postgres://herald_app:s3cret@", 1);
    let function = FunctionProcess::function(
        "migrate",
        &[
            ("OWNER_DATABASE_URL", &owner_url),
            ("DATABASE_URL", &app_url),
        ],
    )
    .await;
    let first = function.invoke(&json!({})).await.response();
    assert!(!first["applied"].as_array().unwrap().is_empty(), "{first}");
    assert_eq!(first["appRolePasswordSet"], Value::Null);
    assert_eq!(first["appPasswordSet"], true);
    let second = function.invoke(&json!({})).await.response();
    assert_eq!(second["applied"], json!([]), "a second run applies nothing");
    assert_eq!(second["current"], first["current"]);

    let pool = sqlx::PgPool::connect(&owner_url).await.unwrap();
    let has_password: bool = sqlx::query_scalar(
        "SELECT rolpassword IS NOT NULL FROM pg_authid WHERE rolname = 'herald_app'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(has_password);
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename = 'contacts'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(tables, 1);
    pool.close().await;
    drop(function);
    sqlx::Postgres::force_drop_database(&owner_url)
        .await
        .unwrap();
}

fn schedule_event() -> Value {
    serde_json::from_str(include_str!("../fixtures/events/eventbridge-schedule.json")).unwrap()
}

/// API Gateway's WebSocket event for `route` on `connection`, from AWS's `$connect` sample.
fn websocket_event(route: &str, connection: &str, query: Value, body: Option<&str>) -> Value {
    let mut event: Value =
        serde_json::from_str(include_str!("../../events/ws-connect.json")).unwrap();
    let event_type = match route {
        "$connect" => "CONNECT",
        "$disconnect" => "DISCONNECT",
        _ => "MESSAGE",
    };
    event["requestContext"]["routeKey"] = route.into();
    event["requestContext"]["eventType"] = event_type.into();
    event["requestContext"]["connectionId"] = connection.into();
    event["requestContext"]["requestId"] = uuid::Uuid::new_v4().to_string().into();
    event["queryStringParameters"] = query.clone();
    event["multiValueQueryStringParameters"] = Value::Object(
        query
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), json!([v])))
            .collect(),
    );
    if let Some(body) = body {
        event["body"] = body.into();
        event["requestContext"]["messageId"] = "JKJaXfL1vHcFbBg=".into();
    }
    event
}

#[tokio::test]
async fn the_websocket_function_binaries_answer_api_gateway_websocket_events() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("owner").await;
    let stored = || async {
        app.count(
            "SELECT count(*) FROM ws_connections WHERE tenant_id = $1",
            tenant,
        )
        .await
    };

    let connect = FunctionProcess::deployed(&app, "ws-connect").await;
    let refused = websocket_event("$connect", "conn-1=", json!({"token": "not-a-jwt"}), None);
    assert_eq!(status(&connect.invoke(&refused).await.response()), 401);
    assert_eq!(stored().await, 0, "a refused connection stores nothing");
    let query = json!({"token": token("owner", None, 600), "tenantId": tenant.to_string()});
    let accepted = websocket_event("$connect", "conn-1=", query, None);
    assert_eq!(status(&connect.invoke(&accepted).await.response()), 200);
    assert_eq!(stored().await, 1);

    let default = FunctionProcess::deployed(&app, "ws-default").await;
    let ping = websocket_event(
        "$default",
        "conn-1=",
        json!({}),
        Some(r#"{"action":"ping"}"#),
    );
    let pong = default.invoke(&ping).await.response();
    assert_eq!(status(&pong), 200);
    assert_eq!(body(&pong)["type"], "pong", "{pong}");

    let disconnect = FunctionProcess::deployed(&app, "ws-disconnect").await;
    let gone = websocket_event("$disconnect", "conn-1=", json!({}), None);
    assert_eq!(status(&disconnect.invoke(&gone).await.response()), 200);
    assert_eq!(stored().await, 0, "$disconnect forgets the connection");
}

#[tokio::test]
async fn the_scheduled_function_binaries_answer_eventbridge_events() {
    let app = TestApp::spawn_config(|c| c.dispatcher.batch = 0).await;
    let tenant = app.tenant("owner").await;
    let user = app.user("owner", tenant);
    user.post(
        "/api/contacts",
        &json!({"name": "Ada", "phone": "+14155550100"}),
    )
    .await
    .ok(201);
    let pending = || async {
        app.count(
            "SELECT count(*) FROM outbox_events WHERE tenant_id = $1 AND dispatched_at IS NULL",
            tenant,
        )
        .await
    };
    // herald-local's own dispatcher reads batches of 0 here, so the event is left for the
    // binary.
    assert_eq!(pending().await, 1);

    let dispatcher = FunctionProcess::deployed(&app, "dispatcher").await;
    let drained = dispatcher.invoke(&schedule_event()).await.response();
    assert_eq!(drained["events"], 1, "{drained}");
    assert_eq!(
        drained["webhookAttempts"], 0,
        "no webhook is configured: {drained}"
    );
    assert_eq!(pending().await, 0, "the dispatcher stamped the event");

    let scheduler = FunctionProcess::deployed(&app, "scheduler").await;
    let report = scheduler.invoke(&schedule_event()).await.response();
    assert_eq!(report["started"], json!([]), "{report}");

    let sender = FunctionProcess::deployed(&app, "sender").await;
    let report = sender.invoke(&schedule_event()).await.response();
    assert_eq!(report["sent"], 0, "{report}");
}
