//! HTTP in, API Gateway HTTP API (payload format 2.0) events through, HTTP out.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use aws_lambda_events::apigw::ApiGatewayV2httpResponse;
use axum::body::Body as AxumBody;
use axum::extract::{ConnectInfo, State};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use herald::App;
use herald::api::{DEFAULT_ROUTE, Function, Route, routes};
use herald::http::problem::Kind;
use http::{HeaderValue, StatusCode, header};
use lambda_http::lambda_runtime::{Context, LambdaEvent};
use lambda_http::request::LambdaRequest;
use lambda_http::tower::Service;
use serde_json::{Value, json};

/// API Gateway refuses larger payloads before any function sees them.
pub const MAX_PAYLOAD: usize = 10 * 1024 * 1024 + 64 * 1024;

pub struct Gateway {
    apps: HashMap<Function, Arc<App>>,
}

impl Gateway {
    pub fn new(apps: impl IntoIterator<Item = Arc<App>>) -> Gateway {
        Gateway {
            apps: apps.into_iter().map(|a| (a.function(), a)).collect(),
        }
    }
}

/// A route and the path parameters it bound.
pub struct Matched {
    pub route_key: String,
    pub function: Function,
    pub params: HashMap<String, String>,
}

/// Matches like API Gateway: method and path template, `{name}` binding one segment; no
/// match goes to `$default`.
pub fn match_route(method: &str, path: &str) -> Matched {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    routes()
        .filter(|r| r.method == method)
        .find_map(|r| bind(r, &segments))
        .unwrap_or_else(|| Matched {
            route_key: DEFAULT_ROUTE.to_owned(),
            function: Function::System,
            params: HashMap::new(),
        })
}

fn bind(route: &Route, segments: &[&str]) -> Option<Matched> {
    let template: Vec<&str> = route.path.split('/').collect();
    if template.len() != segments.len() {
        return None;
    }
    let mut params = HashMap::new();
    for (t, s) in template.iter().zip(segments) {
        match t.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
            Some(name) if !s.is_empty() => {
                params.insert(name.to_owned(), percent_decode(s));
            }
            Some(_) => return None,
            None if t == s => {}
            None => return None,
        }
    }
    Some(Matched {
        route_key: route.key(),
        function: route.function,
        params,
    })
}

/// Path segments are percent-encoded, not form-encoded: `+` is a plus sign, not a space.
fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

pub async fn handle(
    State(gateway): State<Arc<Gateway>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    req: axum::extract::Request,
) -> axum::response::Response {
    let (parts, body) = req.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_PAYLOAD).await else {
        return gateway_error(
            Kind::PayloadTooLarge,
            "the request is larger than API Gateway accepts",
        );
    };
    let matched = match_route(parts.method.as_str(), parts.uri.path());
    let event = event(&parts, &body, &matched, peer);
    let Some(app) = gateway.apps.get(&matched.function).cloned() else {
        return gateway_error(Kind::RouteNotFound, "no function serves this route");
    };
    match invoke(app, event).await {
        Ok(response) => into_http(response),
        Err(e) => {
            tracing::error!(error = %e, "invocation failed");
            gateway_error(Kind::Internal, "the function failed")
        }
    }
}

/// The payload format 2.0 event API Gateway sends for this request.
fn event(
    parts: &http::request::Parts,
    body: &[u8],
    matched: &Matched,
    peer: std::net::SocketAddr,
) -> Value {
    let mut headers: HashMap<String, String> = HashMap::new();
    let mut cookies: Vec<String> = Vec::new();
    for (name, value) in &parts.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        if name == header::COOKIE {
            cookies.extend(value.split(';').map(|c| c.trim().to_owned()));
            continue;
        }
        // API Gateway joins repeated headers with commas.
        headers
            .entry(name.as_str().to_owned())
            .and_modify(|v| {
                v.push(',');
                v.push_str(&value);
            })
            .or_insert(value);
    }
    let raw_query = parts.uri.query().unwrap_or("");
    let mut query: HashMap<String, String> = HashMap::new();
    for (k, v) in form_urlencoded::parse(raw_query.as_bytes()) {
        query
            .entry(k.into_owned())
            .and_modify(|e| {
                e.push(',');
                e.push_str(&v);
            })
            .or_insert_with(|| v.into_owned());
    }
    let (body, is_base64) = match std::str::from_utf8(body) {
        _ if body.is_empty() => (Value::Null, false),
        Ok(text) => (Value::String(text.to_owned()), false),
        Err(_) => (Value::String(STANDARD.encode(body)), true),
    };
    let now = time::OffsetDateTime::now_utc();
    let request_id = uuid::Uuid::new_v4().simple().to_string();
    let host = headers
        .get("host")
        .cloned()
        .unwrap_or_else(|| "localhost".into());
    json!({
        "version": "2.0",
        "routeKey": matched.route_key,
        "rawPath": parts.uri.path(),
        "rawQueryString": raw_query,
        "cookies": if cookies.is_empty() { Value::Null } else { json!(cookies) },
        "headers": headers,
        "queryStringParameters": if query.is_empty() { Value::Null } else { json!(query) },
        "pathParameters": if matched.params.is_empty() { Value::Null } else { json!(matched.params) },
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "local",
            "domainName": host,
            "domainPrefix": host.split('.').next().unwrap_or("localhost"),
            "http": {
                "method": parts.method.as_str(),
                "path": parts.uri.path(),
                "protocol": format!("{:?}", parts.version),
                "sourceIp": peer.ip().to_string(),
                "userAgent": headers.get("user-agent").cloned().unwrap_or_default(),
            },
            "requestId": request_id,
            "routeKey": matched.route_key,
            "stage": "$default",
            "time": now.format(&time::macros::format_description!(
                "[day]/[month repr:short]/[year]:[hour]:[minute]:[second] +0000"
            )).unwrap_or_default(),
            "timeEpoch": (now.unix_timestamp_nanos() / 1_000_000) as i64,
        },
        "body": body,
        "isBase64Encoded": is_base64,
    })
}

/// Runs the event through `lambda_http`'s adapter, as the Lambda runtime would, and returns
/// the response document the runtime would post back.
async fn invoke(app: Arc<App>, event: Value) -> anyhow::Result<ApiGatewayV2httpResponse> {
    let request: LambdaRequest = serde_json::from_value(event)?;
    let mut adapter = lambda_http::Adapter::from(lambda_http::service_fn(move |req| {
        let app = Arc::clone(&app);
        async move { Ok::<_, Infallible>(app.serve(req).await) }
    }));
    let response = adapter
        .call(LambdaEvent::new(request, Context::default()))
        .await?;
    Ok(serde_json::from_value(serde_json::to_value(response)?)?)
}

fn into_http(response: ApiGatewayV2httpResponse) -> axum::response::Response {
    let status = u16::try_from(response.status_code)
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::BAD_GATEWAY);
    let body = match response.body {
        Some(aws_lambda_events::encodings::Body::Text(text)) if response.is_base64_encoded => {
            STANDARD.decode(text).unwrap_or_default()
        }
        Some(aws_lambda_events::encodings::Body::Text(text)) => text.into_bytes(),
        Some(aws_lambda_events::encodings::Body::Binary(bytes)) => bytes,
        _ => Vec::new(),
    };
    let mut out = axum::response::Response::new(AxumBody::from(body));
    *out.status_mut() = status;
    *out.headers_mut() = response.headers;
    for cookie in response.cookies {
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            out.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    out
}

/// Errors the gateway itself answers when no function can.
fn gateway_error(kind: Kind, detail: &str) -> axum::response::Response {
    let status = kind.status();
    let body = json!({
        "type": kind.type_uri(),
        "title": kind.title(herald::http::Locale::En),
        "status": status.as_u16(),
        "detail": detail,
    });
    let mut out = axum::response::Response::new(AxumBody::from(body.to_string()));
    *out.status_mut() = status;
    out.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_templates_and_falls_back_to_default() {
        let m = match_route("GET", "/api/contacts/abc");
        assert_eq!(m.route_key, "GET /api/contacts/{id}");
        assert_eq!(m.params["id"], "abc");
        assert_eq!(
            match_route("POST", "/api/contacts/import").route_key,
            "POST /api/contacts/import"
        );
        assert_eq!(match_route("PUT", "/api/contacts").route_key, "$default");
        assert_eq!(match_route("GET", "/nope").function, Function::System);
        let member = match_route("PUT", "/api/tenant/members/auth0%7Cab+c%26d");
        assert_eq!(member.params["sub"], "auth0|ab+c&d");
    }
}
