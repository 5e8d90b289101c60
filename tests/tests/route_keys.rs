//! Every HTTP route answers the same whether API Gateway names it by its route key
//! (`GET /api/contacts/{id}`, path parameters bound by the gateway) or sends `$default` (a
//! Lambda function URL, `cargo lambda watch`, the HTTP API's catch-all), when the function
//! matches method and path itself.
//!
//! Table-driven over the route table (`herald::api::ENDPOINTS`): a new route is covered
//! without touching this file. Each route's function is built as its Lambda `main.rs` builds
//! it (`App::new` over the application role's pool) and fed the payload 2.0 event of AWS's
//! documentation (tests/fixtures/events/apigw-http.json) through `lambda_http`'s own
//! conversion, once per route key.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use herald::App;
use herald::api::{ENDPOINTS, Route};
use herald::auth::Verifier;
use herald::config::JwtConfig;
use herald_tests::function_process::http_event;
use herald_tests::{SECRET, TestApp, token};
use lambda_http::request::LambdaRequest;
use serde_json::{Value, json};
use uuid::Uuid;

/// What one invocation answered: status, content type and body.
#[derive(Debug, PartialEq)]
struct Answer {
    status: u16,
    content_type: String,
    body: String,
}

async fn invoke(app: &App, event: Value) -> Answer {
    let request: LambdaRequest = serde_json::from_value(event).expect("a payload 2.0 event");
    let response = app.serve(lambda_http::Request::from(request)).await;
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let status = response.status().as_u16();
    let body = match response.into_body() {
        lambda_http::Body::Empty => String::new(),
        lambda_http::Body::Text(text) => text,
        lambda_http::Body::Binary(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        _ => String::new(),
    };
    Answer {
        status,
        content_type,
        body,
    }
}

/// Routes whose answer counts the requests made so far, this one's too: the second send
/// sees the first. Their bodies are compared with every number zeroed and without their
/// own route's entry, so what is left (the shape, the routes and their functions, the
/// tenant) must still be equal.
const SELF_OBSERVING: &[&str] = &["GET /api/performance/stats"];

fn comparable(key: &str, mut answer: Answer) -> Answer {
    fn zero(value: &mut Value) {
        match value {
            Value::Number(_) => *value = json!(0),
            Value::Array(items) => items.iter_mut().for_each(zero),
            Value::Object(fields) => fields.values_mut().for_each(zero),
            _ => {}
        }
    }
    if !SELF_OBSERVING.contains(&key) || answer.status != 200 {
        return answer;
    }
    let mut body: Value = serde_json::from_str(&answer.body).expect("a JSON body");
    if let Some(routes) = body["routes"].as_array_mut() {
        routes.retain(|r| r["route"] != key);
    }
    zero(&mut body);
    answer.body = body.to_string();
    answer
}

/// `template` with each `{name}` replaced by `values[name]`.
fn fill(template: &str, values: &BTreeMap<&'static str, String>) -> String {
    template
        .split('/')
        .map(
            |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => values
                    .get(name)
                    .unwrap_or_else(|| panic!("no value for {{{name}}} in {template}"))
                    .clone(),
                None => s.to_owned(),
            },
        )
        .collect::<Vec<_>>()
        .join("/")
}

/// The path parameters a route's request uses. Reads (GET) name the tenant's real
/// resources, so that they answer 200 with data; writes name ids that do not exist (and a
/// member who is not one), so that neither send changes anything the other would see.
fn parameters(
    route: &Route,
    real: &BTreeMap<&'static str, String>,
) -> BTreeMap<&'static str, String> {
    let missing = Uuid::now_v7().to_string();
    let resource = route
        .path()
        .trim_start_matches("/api/")
        .split('/')
        .next()
        .unwrap_or("")
        .to_owned();
    let mut values = BTreeMap::new();
    let id = match real.get(resource.as_str()) {
        Some(id) if route.method() == "GET" => id.clone(),
        _ => missing.clone(),
    };
    values.insert("id", id);
    values.insert("logId", missing);
    values.insert("sub", "nobody-at-all".to_owned());
    values
}

#[tokio::test]
async fn every_route_answers_the_same_by_route_key_and_by_default() {
    // No rollup flush between the two sends of a route: /api/performance/stats reads them.
    let app = TestApp::spawn_config(|c| c.observer.flush_every = Duration::from_secs(3600)).await;
    let tenant = app.tenant("owner").await;
    let owner = app.user("owner", tenant);
    let contact = owner.contact("Ada Lovelace", "+14155550100").await;
    let group = owner
        .post("/api/groups", &json!({"name": "VIP"}))
        .await
        .ok(201)
        .clone();
    let group_path = format!("/api/groups/{}/contacts", group["id"].as_str().unwrap());
    owner
        .post(&group_path, &json!({"contactIds": [contact["id"]]}))
        .await
        .ok(200);
    let template = owner
        .post(
            "/api/templates",
            &json!({"name": "Hi", "body": "Hello {{ contact.name }}"}),
        )
        .await
        .ok(201)
        .clone();
    let campaign = owner
        .post(
            "/api/campaigns",
            &json!({"name": "Launch", "templateId": template["id"], "groupId": group["id"]}),
        )
        .await
        .ok(201)
        .clone();
    let message = owner
        .post(
            "/api/messages",
            &json!({"contactId": contact["id"], "body": "Hello"}),
        )
        .await
        .ok(201)
        .clone();
    let webhook = owner
        .post(
            "/api/webhooks",
            &json!({"url": "https://hooks.example.com/herald", "eventTypes": ["contact_created"]}),
        )
        .await
        .ok(201)
        .clone();
    let id = |v: &Value| v["id"].as_str().unwrap().to_owned();
    let real: BTreeMap<&'static str, String> = [
        ("contacts", id(&contact)),
        ("groups", id(&group)),
        ("templates", id(&template)),
        ("campaigns", id(&campaign)),
        ("messages", id(&message)),
        ("webhooks", id(&webhook)),
    ]
    .into();

    let verifier = Arc::new(Verifier::new(&JwtConfig {
        hs256_secret: Some(SECRET.to_owned()),
        ..JwtConfig::default()
    }));
    let bearer = format!("Bearer {}", token("owner", None, 600));
    let tenant_header = tenant.to_string();
    let headers = [
        ("authorization", bearer.as_str()),
        ("x-tenant-id", tenant_header.as_str()),
    ];

    let mut compared = 0;
    let mut by_status: BTreeMap<u16, usize> = BTreeMap::new();
    for endpoint in ENDPOINTS {
        let function = App::new(*endpoint, app.db.clone(), Arc::clone(&verifier));
        for route in endpoint.routes {
            let path = fill(&route.path(), &parameters(route, &real));
            let body = (route.method() != "GET" && route.method() != "DELETE").then(|| json!({}));
            let request_id = Uuid::new_v4().to_string();
            let event = |key: &str| {
                let mut event = http_event(route.method(), key, &path, &headers, body.as_ref());
                // The same request id both times: problem documents carry it.
                event["requestContext"]["requestId"] = request_id.clone().into();
                event
            };
            let key = route.key();
            let by_key = comparable(&key, invoke(&function, event(&key)).await);
            let by_default = comparable(&key, invoke(&function, event("$default")).await);
            let what = format!("{} {path}", route.key());
            assert!(
                !by_key.body.contains("/problems/route-not-found"),
                "{what}: its own function does not know it by its key: {by_key:?}"
            );
            // Were `$default` no longer dispatched by method and path, it would answer the
            // route-not-found problem that the route key never gets (asserted above).
            assert_eq!(
                by_key, by_default,
                "{what}: by route key (left) and as $default (right)"
            );
            *by_status.entry(by_key.status).or_default() += 1;
            compared += 1;
        }
    }
    eprintln!("{compared} routes answered alike; by status: {by_status:?}");
    assert_eq!(compared, herald::api::routes().count());
    // The reads found their resources: the comparison is not only of 404s.
    assert!(
        by_status.get(&200).copied().unwrap_or(0) >= 15,
        "{by_status:?}"
    );
    assert!(by_status.contains_key(&404), "{by_status:?}");
    assert!(by_status.contains_key(&422), "{by_status:?}");
}
