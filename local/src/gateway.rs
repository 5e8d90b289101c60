//! HTTP in, API Gateway HTTP API (payload format 2.0) events through, HTTP out.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use aws_lambda_events::apigw::{
    ApiGatewayV2httpRequest, ApiGatewayV2httpRequestContext,
    ApiGatewayV2httpRequestContextHttpDescription, ApiGatewayV2httpResponse,
};
use axum::body::Body as AxumBody;
use axum::extract::{ConnectInfo, State};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use herald::App;
use herald::api::{DEFAULT_ROUTE, Function, Router, routes};
use herald::http::problem::Kind;
use http::{HeaderValue, StatusCode, header};
use lambda_http::lambda_runtime::{Context, LambdaEvent};
use lambda_http::request::LambdaRequest;
use lambda_http::tower::Service;
use serde_json::json;

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
    if let Some(proxy) = path.strip_prefix(herald::api::trpc::PREFIX) {
        return Matched {
            route_key: herald::api::trpc::ROUTE_KEY.to_owned(),
            function: Function::Trpc,
            params: HashMap::from([("proxy".to_owned(), proxy.to_owned())]),
        };
    }
    static ROUTER: std::sync::OnceLock<Router> = std::sync::OnceLock::new();
    let router = ROUTER.get_or_init(|| Router::new(routes()));
    match router.find_path(method, path) {
        Some(m) => Matched {
            route_key: m.key.to_owned(),
            function: m.route.function(),
            params: m.params.unwrap_or_default(),
        },
        None => Matched {
            route_key: DEFAULT_ROUTE.to_owned(),
            function: Function::System,
            params: HashMap::new(),
        },
    }
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
    let Some(app) = gateway.apps.get(&matched.function).cloned() else {
        return gateway_error(Kind::RouteNotFound, "no function serves this route");
    };
    // In AWS an invocation runs to its end when the client hangs up; here it does too, in a
    // task of its own. Dropped with the connection instead, it would stop at whatever it was
    // awaiting, and sqlx 0.9 cannot be stopped while `BEGIN` is on the wire: the session
    // stays in a transaction sqlx does not know of, and the pool lends it to the next
    // borrower (transact-rs/sqlx#4393).
    match tokio::spawn(invoke(app, event(&parts, &body, matched, peer))).await {
        Ok(Ok(response)) => into_http(response),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "invocation failed");
            gateway_error(Kind::Internal, "the function failed")
        }
        Err(e) => {
            tracing::error!(error = %e, "invocation panicked");
            gateway_error(Kind::Internal, "the function failed")
        }
    }
}

/// The payload format 2.0 event API Gateway sends for this request, built as the typed
/// struct the runtime would deserialize (no JSON in between: this runs on every request).
fn event(
    parts: &http::request::Parts,
    body: &[u8],
    matched: Matched,
    peer: std::net::SocketAddr,
) -> ApiGatewayV2httpRequest {
    let mut headers = http::HeaderMap::with_capacity(parts.headers.len());
    let mut cookies: Vec<String> = Vec::new();
    for name in parts.headers.keys() {
        let values = parts.headers.get_all(name);
        if name == header::COOKIE {
            for value in values {
                let value = String::from_utf8_lossy(value.as_bytes());
                cookies.extend(value.split(';').map(|c| c.trim().to_owned()));
            }
            continue;
        }
        // API Gateway joins repeated headers with commas; a single value is kept as it is.
        let mut each = values.iter();
        let joined = match (each.next(), each.next()) {
            (Some(only), None) => Some(only.clone()),
            _ => {
                let all: Vec<&[u8]> = values.iter().map(HeaderValue::as_bytes).collect();
                HeaderValue::from_bytes(&all.join(&b","[..])).ok()
            }
        };
        if let Some(value) = joined {
            headers.insert(name.clone(), value);
        }
    }
    let raw_query = parts.uri.query().unwrap_or("");
    let mut query: HashMap<String, String> = HashMap::new();
    for (k, v) in form_urlencoded::parse(raw_query.as_bytes()) {
        // API Gateway joins repeated parameters with commas.
        query
            .entry(k.into_owned())
            .and_modify(|e| {
                e.push(',');
                e.push_str(&v);
            })
            .or_insert_with(|| v.into_owned());
    }
    let (body, is_base64) = match std::str::from_utf8(body) {
        _ if body.is_empty() => (None, false),
        Ok(text) => (Some(text.to_owned()), false),
        Err(_) => (Some(STANDARD.encode(body)), true),
    };
    let now = time::OffsetDateTime::now_utc();
    let header_text = |name: header::HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let host = header_text(header::HOST).unwrap_or_else(|| "localhost".into());
    let user_agent = header_text(header::USER_AGENT).unwrap_or_default();

    let mut http = ApiGatewayV2httpRequestContextHttpDescription::default();
    http.method = parts.method.clone();
    http.path = Some(parts.uri.path().to_owned());
    http.protocol = Some(format!("{:?}", parts.version));
    http.source_ip = Some(peer.ip().to_string());
    http.user_agent = Some(user_agent);

    let mut context = ApiGatewayV2httpRequestContext::default();
    context.account_id = Some("000000000000".into());
    context.apiid = Some("local".into());
    context.domain_prefix = Some(host.split('.').next().unwrap_or("localhost").to_owned());
    context.domain_name = Some(host);
    context.http = http;
    context.request_id = Some(uuid::Uuid::new_v4().simple().to_string());
    context.route_key = Some(matched.route_key.clone());
    context.stage = Some("$default".into());
    context.time = now
        .format(&time::macros::format_description!(
            "[day]/[month repr:short]/[year]:[hour]:[minute]:[second] +0000"
        ))
        .ok();
    context.time_epoch = (now.unix_timestamp_nanos() / 1_000_000) as i64;

    let mut event = ApiGatewayV2httpRequest::default();
    event.version = Some("2.0".into());
    event.route_key = Some(matched.route_key);
    event.raw_path = Some(parts.uri.path().to_owned());
    event.raw_query_string = Some(raw_query.to_owned());
    event.cookies = (!cookies.is_empty()).then_some(cookies);
    event.headers = headers;
    event.query_string_parameters = query.into();
    event.path_parameters = matched.params;
    event.request_context = context;
    event.body = body;
    event.is_base64_encoded = is_base64;
    event
}

/// Runs the event through `lambda_http`'s adapter, as the Lambda runtime would, and returns
/// the response document the runtime would post back.
async fn invoke(
    app: Arc<App>,
    event: ApiGatewayV2httpRequest,
) -> anyhow::Result<ApiGatewayV2httpResponse> {
    let mut adapter = lambda_http::Adapter::from(lambda_http::service_fn(move |req| {
        let app = Arc::clone(&app);
        async move { Ok::<_, Infallible>(app.serve(req).await) }
    }));
    let response = adapter
        .call(LambdaEvent::new(
            LambdaRequest::ApiGatewayV2(event),
            Context::default(),
        ))
        .await?;
    // lambda_http keeps its response enum private; its JSON is what the runtime posts.
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
        let trpc = match_route("GET", "/api/trpc/contacts.list,groups.list");
        assert_eq!(trpc.route_key, "ANY /api/trpc/{proxy+}");
        assert_eq!(trpc.function, Function::Trpc);
    }

    #[test]
    fn events_join_repeats_split_cookies_and_encode_binary_bodies() {
        let req = http::Request::builder()
            .method("GET")
            .uri("/api/contacts/abc?tag=a&tag=b+c&limit=5")
            .header("x-many", "1")
            .header("x-many", "2")
            .header("cookie", "a=1; b=2")
            .header("host", "herald.example.com")
            .body(())
            .unwrap();
        let (parts, ()) = req.into_parts();
        let peer = "127.0.0.1:4000".parse().unwrap();
        let matched = match_route("GET", parts.uri.path());
        let event = event(&parts, &[0xff, 0x00], matched, peer);
        assert_eq!(event.route_key.as_deref(), Some("GET /api/contacts/{id}"));
        assert_eq!(event.path_parameters["id"], "abc");
        assert_eq!(event.headers["x-many"], "1,2");
        assert!(event.headers.get("cookie").is_none());
        assert_eq!(event.cookies, Some(vec!["a=1".into(), "b=2".into()]));
        assert_eq!(event.query_string_parameters.first("tag"), Some("a,b c"));
        assert_eq!(
            event.raw_query_string.as_deref(),
            Some("tag=a&tag=b+c&limit=5")
        );
        assert!(event.is_base64_encoded);
        assert_eq!(event.body.as_deref(), Some("/wA="));
        let context = &event.request_context;
        assert_eq!(context.domain_prefix.as_deref(), Some("herald"));
        assert_eq!(context.http.method, http::Method::GET);
        assert_eq!(context.http.source_ip.as_deref(), Some("127.0.0.1"));
        // The runtime reads what API Gateway writes: the event survives its JSON form.
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["requestContext"]["http"]["path"], "/api/contacts/abc");
        let _: LambdaRequest = serde_json::from_value(json).unwrap();
    }
}
