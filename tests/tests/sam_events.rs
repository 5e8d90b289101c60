//! The events in `events/`, as they are committed, answered by the real function binaries
//! under the Runtime API emulator: those `sam local generate-event` wrote (`events/sam/`,
//! regenerated and diffed in CI by scripts/check-sam-events) and the WebSocket events of
//! AWS's documentation that `cargo lambda invoke` is given in the README.
//!
//! SAM's HTTP API events carry route key `$default`, a base64 body, made-up headers, query
//! parameters and path parameters, and no credentials: only a token and a tenant are added
//! here, as a caller would send them.

use herald_tests::function_process::{FunctionProcess, workspace_root};
use herald_tests::{TestApp, token};
use serde_json::{Value, json};

fn event(file: &str) -> Value {
    let path = workspace_root().join("events").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

/// A SAM HTTP event with the caller's token and tenant, as a client sends them.
fn signed(file: &str, bearer: &str, tenant: &str) -> Value {
    let mut event = event(file);
    event["headers"]["authorization"] = bearer.into();
    event["headers"]["x-tenant-id"] = tenant.into();
    event
}

/// The same event for another path (the id of a resource made in this test).
fn at(mut event: Value, path: &str) -> Value {
    event["rawPath"] = path.into();
    event["requestContext"]["http"]["path"] = path.into();
    event
}

/// Status and JSON body of an API Gateway response.
async fn call(function: &FunctionProcess, event: &Value) -> (u64, Value) {
    let response = function.invoke(event).await.response();
    let status = response["statusCode"]
        .as_u64()
        .unwrap_or_else(|| panic!("an API Gateway response: {response}"));
    let body =
        serde_json::from_str(response["body"].as_str().unwrap_or("null")).unwrap_or(Value::Null);
    (status, body)
}

#[tokio::test]
async fn the_http_functions_answer_sams_http_api_events() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("owner").await;
    let bearer = format!("Bearer {}", token("owner", None, 600));
    let tenant = tenant.to_string();
    let signed = |file| signed(file, &bearer, &tenant);

    let contacts = FunctionProcess::deployed(&app, "contacts").await;
    let (status, created) = call(&contacts, &signed("sam/http-contacts-create.json")).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["name"], "Ada Lovelace");
    assert_eq!(created["email"], "ada@example.com");
    let id = created["id"].as_str().unwrap().to_owned();

    let (status, list) = call(&contacts, &signed("sam/http-contacts-list.json")).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["items"], json!([created]));

    let (status, problem) = call(&contacts, &signed("sam/http-contacts-get.json")).await;
    assert_eq!(status, 404, "no such contact: {problem}");
    assert_eq!(problem["type"], "https://herald.dev/problems/not-found");
    let get = at(
        signed("sam/http-contacts-get.json"),
        &format!("/api/contacts/{id}"),
    );
    let (status, got) = call(&contacts, &get).await;
    assert_eq!((status, &got), (200, &created));

    let (status, problem) = call(&contacts, &event("sam/http-contacts-list.json")).await;
    assert_eq!(status, 401, "SAM's event has no token: {problem}");
    assert_eq!(problem["status"], 401);

    let groups = FunctionProcess::deployed(&app, "groups").await;
    let (status, list) = call(&groups, &signed("sam/http-groups-list.json")).await;
    assert_eq!((status, &list["items"]), (200, &json!([])), "{list}");

    let tenants = FunctionProcess::deployed(&app, "tenants").await;
    let (status, list) = call(&tenants, &signed("sam/http-tenants-list.json")).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["items"][0]["id"], tenant.as_str(), "{list}");
    assert_eq!(list["items"][0]["role"], "owner", "{list}");

    let system = FunctionProcess::deployed(&app, "system").await;
    let (status, health) = call(&system, &event("sam/http-health.json")).await;
    assert_eq!((status, &health["status"]), (200, &json!("ok")), "{health}");
    // The contacts path, sent to the system function's URL.
    let (status, problem) = call(&system, &signed("sam/http-contacts-list.json")).await;
    assert_eq!(status, 404, "{problem}");
    assert_eq!(
        problem["detail"],
        "GET /api/contacts is served by the contacts function, not system"
    );
}

#[tokio::test]
async fn the_websocket_functions_answer_awss_documented_events_in_a_connections_order() {
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
    let (status, _) = call(&connect, &event("ws-connect.json")).await;
    assert_eq!(status, 401, "the committed event has no token");
    assert_eq!(stored().await, 0);
    // What the README's `jq` adds before `cargo lambda invoke ws-connect`.
    let mut with_token = event("ws-connect.json");
    with_token["queryStringParameters"]["token"] = token("owner", None, 600).into();
    with_token["queryStringParameters"]["tenantId"] = tenant.to_string().into();
    let (status, _) = call(&connect, &with_token).await;
    assert_eq!(status, 200);
    assert_eq!(stored().await, 1, "$connect stored the connection");

    let default = FunctionProcess::deployed(&app, "ws-default").await;
    let (status, pong) = call(&default, &event("ws-default.json")).await;
    assert_eq!((status, &pong["type"]), (200, &json!("pong")), "{pong}");

    let disconnect = FunctionProcess::deployed(&app, "ws-disconnect").await;
    let (status, _) = call(&disconnect, &event("ws-disconnect.json")).await;
    assert_eq!(status, 200);
    assert_eq!(stored().await, 0, "$disconnect forgot the connection");
}

#[tokio::test]
async fn the_scheduled_functions_answer_sams_scheduled_event() {
    let app = TestApp::spawn_config(|c| c.dispatcher.batch = 0).await;
    let tenant = app.tenant("owner").await;
    app.user("owner", tenant)
        .contact("Ada Lovelace", "+14155550100")
        .await;
    let scheduled = event("sam/scheduled-event.json");

    let dispatcher = FunctionProcess::deployed(&app, "dispatcher").await;
    let drained = dispatcher.invoke(&scheduled).await.response();
    assert_eq!(drained["events"], 1, "contact_created: {drained}");
    let pending: i64 = app
        .count(
            "SELECT count(*) FROM outbox_events WHERE tenant_id = $1 AND dispatched_at IS NULL",
            tenant,
        )
        .await;
    assert_eq!(pending, 0);

    let scheduler = FunctionProcess::deployed(&app, "scheduler").await;
    let report = scheduler.invoke(&scheduled).await.response();
    assert_eq!(report["started"], json!([]), "{report}");

    let sender = FunctionProcess::deployed(&app, "sender").await;
    let report = sender.invoke(&scheduled).await.response();
    assert_eq!(report["sent"], 0, "{report}");
}
