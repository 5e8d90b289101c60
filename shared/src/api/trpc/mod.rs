//! The seed's tRPC procedures at `/api/trpc/<router>.<procedure>`, for its clients to work
//! unchanged. No rule lives here: each call becomes the REST request of the route its
//! procedure names (the `procedures!` table beside each `routes!`), runs through
//! [`App::serve_route`] like any other (token, tenant, rate limit, idempotency), and its
//! answer is put in tRPC's envelope ([`wire`]).

mod input;
pub mod wire;

use std::collections::HashMap;
use std::sync::OnceLock;

use http::{HeaderMap, HeaderValue, StatusCode, header};
use lambda_http::RequestExt;
use lambda_http::request::RequestContext;
use utoipa::openapi::RefOr;
use utoipa::openapi::path::ParameterIn;

use super::{Endpoint, Function, PROCEDURES, Procedure, Route, routes};
use crate::App;
use crate::http::problem::Kind;
use crate::http::{Body, Locale, Problem, Request, Response, request};
use input::{Rest, Shape};
use wire::{Answer, Call};

/// Where API Gateway sends every procedure (`template.yaml`), and its route key.
pub const PREFIX: &str = "/api/trpc/";
pub const ROUTE_KEY: &str = "ANY /api/trpc/{proxy+}";

/// The `trpc` function: every route, since one batch may call several resources.
pub fn endpoint() -> Endpoint {
    static ALL: OnceLock<Vec<Route>> = OnceLock::new();
    Endpoint {
        function: Function::Trpc,
        routes: ALL.get_or_init(|| routes().copied().collect()),
    }
}

/// A procedure with its route and what that route takes.
struct Resolved {
    procedure: Procedure,
    route: &'static Route,
    shape: Shape,
}

/// The procedures by name, resolved once to their routes.
fn table() -> &'static HashMap<&'static str, Resolved> {
    static TABLE: OnceLock<HashMap<&'static str, Resolved>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let procedures = PROCEDURES.iter().copied().flatten();
        procedures
            .map(|p| (p.name, resolve(*p).expect("every procedure names a route")))
            .collect()
    })
}

fn resolve(procedure: Procedure) -> Option<Resolved> {
    let key = procedure.place.key();
    let route = routes().find(|r| r.key() == key && r.function() == procedure.place.function)?;
    let operation = (procedure.operation)();
    let query = operation
        .parameters
        .iter()
        .flatten()
        .filter_map(|p| match p {
            RefOr::T(p) if p.parameter_in == ParameterIn::Query => Some(p),
            _ => None,
        });
    let shape = Shape {
        template: procedure.place.path(),
        query: query.map(|p| p.name.clone()).collect(),
        body: operation.request_body.is_some(),
        body_field: procedure.body_field,
    };
    Some(Resolved {
        procedure,
        route,
        shape,
    })
}

/// The procedure paths a request to `/api/trpc/…` names (percent-decoded), if it is one.
fn procedure_paths(req: &Request) -> Option<String> {
    let path = match req.raw_http_path() {
        "" => req.uri().path(),
        raw => raw,
    };
    let paths = path.strip_prefix(PREFIX)?;
    Some(
        percent_encoding::percent_decode_str(paths)
            .decode_utf8_lossy()
            .into_owned(),
    )
}

/// Whether the request calls a procedure whose route queues messages (`app::run` then kicks
/// the sender).
pub fn wakes_sender(req: &Request) -> bool {
    procedure_paths(req).is_some_and(|paths| {
        paths
            .split(',')
            .any(|p| table().get(p).is_some_and(|r| r.route.wakes_sender))
    })
}

/// Answers one tRPC request. Calls run one after another, each in its own transaction:
/// concurrent ones holding an `Idempotency-Key` would each want two of a small pool's
/// connections at once.
pub async fn serve(app: &App, req: Request) -> Response<Body> {
    let (request_id, _) = request::request_id_and_route(&req);
    if req.method() == http::Method::HEAD {
        return respond(
            StatusCode::NO_CONTENT,
            String::new(),
            HeaderMap::new(),
            &request_id,
        );
    }
    let stream = request::header(&req, "trpc-accept") == Some("application/jsonl")
        || request::header(&req, "accept")
            .is_some_and(|a| a.split(',').any(|t| t.trim() == "application/jsonl"));
    let body = (req.method() != http::Method::GET).then(|| bytes_of(req.body()));
    let paths = procedure_paths(&req).unwrap_or_default();
    let calls = wire::parse(&paths, req.uri().query(), body, stream);
    let mut answers = Vec::with_capacity(calls.calls.len());
    let mut headers = HeaderMap::new();
    for call in calls.calls {
        let response = Box::pin(call_route(app, &req, &call, calls.batch, stream)).await;
        carry_headers(&response, &mut headers);
        answers.push(answer(&call.path, response));
    }
    let (status, text) = match (calls.batch, stream) {
        (true, true) => (StatusCode::OK, wire::json_lines(&answers)),
        (true, false) => (wire::batch_status(&answers), wire::array(&answers)),
        (false, _) => match answers.pop() {
            Some(Answer { status, json }) => (status, json),
            None => (StatusCode::OK, String::new()),
        },
    };
    respond(status, text, headers, &request_id)
}

/// The REST response of one call: its route's, or the problem that kept it from the route.
async fn call_route(
    app: &App,
    outer: &Request,
    call: &Call,
    batch: bool,
    stream: bool,
) -> Response<Body> {
    let (request_id, _) = request::request_id_and_route(outer);
    let locale = Locale::negotiate(request::header(outer, "accept-language"));
    let problem = match rest_request(outer, call, batch, stream) {
        Ok(req) => return app.serve_route(req).await,
        Err(problem) => problem,
    };
    let mut response = problem.into_response(locale, outer.uri().path(), &request_id);
    // A 405 names the method the procedure takes (RFC 9110 15.5.6), as tRPC's server does.
    if let (StatusCode::METHOD_NOT_ALLOWED, Some(resolved)) =
        (response.status(), table().get(call.path.as_str()))
    {
        let allow = if resolved.procedure.is_query() {
            "GET"
        } else {
            "POST"
        };
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static(allow));
    }
    response
}

/// The REST request a call becomes, or why there is none: no such procedure, the wrong
/// method for its kind, an input that is not JSON or does not fit the route.
fn rest_request(
    outer: &Request,
    call: &Call,
    batch: bool,
    stream: bool,
) -> Result<Request, Problem> {
    if stream && !batch {
        return Err(Problem::malformed(
            "Streaming requests must be batched (you can do a batch of 1)",
        ));
    }
    let resolved = table().get(call.path.as_str()).ok_or_else(|| {
        let detail = format!("No procedure found on path \"{}\"", call.path);
        Problem::new(Kind::RouteNotFound, detail)
    })?;
    let (kind, method) = match resolved.procedure.is_query() {
        true => ("query", http::Method::GET),
        false => ("mutation", http::Method::POST),
    };
    if outer.method() != method {
        let detail = format!(
            "Unsupported {}-request to {kind} procedure at path \"{}\"",
            outer.method(),
            call.path
        );
        return Err(Problem::new(Kind::MethodNotAllowed, detail));
    }
    let input = call.input.clone().map_err(Problem::malformed)?;
    let mut rest = input::split(&resolved.shape, input)?;
    input::url_tenant(&mut rest, tenant_in_url(outer).as_deref())?;
    build(outer, resolved.route, rest)
}

/// The `tenantId` query parameter of the tRPC request itself.
fn tenant_in_url(outer: &Request) -> Option<String> {
    let query = outer.uri().query()?;
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "tenantId")
        .map(|(_, v)| v.into_owned())
}

/// `rest` as API Gateway would have handed it to the route: the caller's headers, its
/// request context with the route's key, the path parameters bound.
fn build(outer: &Request, route: &Route, rest: Rest) -> Result<Request, Problem> {
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&rest.query)
        .finish();
    let uri = match query.is_empty() {
        true => rest.path.clone(),
        false => format!("{}?{query}", rest.path),
    };
    let body = rest.body.map_or(Body::Empty, Body::Text);
    let mut req = http::Request::builder()
        .method(route.method())
        .uri(&uri)
        .body(body)
        .map_err(|_| Problem::malformed("the input does not make a valid path"))?;
    *req.headers_mut() = outer.headers().clone();
    req.headers_mut().remove(header::CONTENT_LENGTH);
    req.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let mut context = match outer.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(context)) => context.clone(),
        _ => Default::default(),
    };
    context.route_key = Some(route.key());
    context.http.method = req.method().clone();
    context.http.path = Some(rest.path.clone());
    let query: HashMap<String, String> = rest.query.into_iter().collect();
    Ok(req
        .with_request_context(RequestContext::ApiGatewayV2(context))
        .with_raw_http_path(rest.path)
        .with_path_parameters(rest.params)
        .with_query_string_parameters(query))
}

/// A route's response as a tRPC answer.
fn answer(path: &str, response: Response<Body>) -> Answer {
    let status = response.status();
    let text = bytes_of(response.body());
    match status.is_success() {
        true => wire::success(std::str::from_utf8(text).unwrap_or("null")),
        false => wire::error(path, status, text),
    }
}

fn bytes_of(body: &Body) -> &[u8] {
    match body {
        Body::Text(t) => t.as_bytes(),
        Body::Binary(b) => b,
        _ => &[],
    }
}

/// The headers a caller reads off a REST answer, kept for the tRPC answer: the latest rate
/// limit state, the longest `Retry-After`, the challenge of a refused token, `Allow`, and
/// `Idempotent-Replayed`.
fn carry_headers(response: &Response<Body>, into: &mut HeaderMap) {
    let from = response.headers();
    for name in ["ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"] {
        if let Some(value) = from.get(name) {
            into.insert(name, value.clone());
        }
    }
    let replayed = header::HeaderName::from_static("idempotent-replayed");
    for name in [header::WWW_AUTHENTICATE, header::ALLOW, replayed] {
        if let Some(value) = from.get(&name) {
            into.insert(name, value.clone());
        }
    }
    let secs = |h: &HeaderMap| {
        h.get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok()?.parse::<u32>().ok())
    };
    if let Some(after) = secs(from)
        && secs(into).is_none_or(|before| after > before)
    {
        into.insert(header::RETRY_AFTER, HeaderValue::from(after));
    }
}

fn respond(
    status: StatusCode,
    text: String,
    headers: HeaderMap,
    request_id: &str,
) -> Response<Body> {
    let body = if text.is_empty() {
        Body::Empty
    } else {
        Body::Text(text)
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    let headers = response.headers_mut();
    if status != StatusCode::NO_CONTENT {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    headers.insert(
        header::VARY,
        HeaderValue::from_static("trpc-accept, accept"),
    );
    if let Ok(value) = HeaderValue::from_str(request_id) {
        headers.insert("x-request-id", value);
    }
    response
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    /// Every procedure resolves to a real route of its function, no name is declared twice,
    /// and every route of the seed's functions has its procedure (a new route needs one).
    #[test]
    fn every_procedure_names_a_route_and_every_seed_route_has_one() {
        let mut names = HashSet::new();
        let mut covered = HashSet::new();
        for procedure in PROCEDURES.iter().copied().flatten() {
            assert!(names.insert(procedure.name), "{procedure:?} declared twice");
            let resolved = resolve(*procedure).unwrap_or_else(|| panic!("{procedure:?}"));
            assert_eq!(resolved.route.key(), procedure.place.key());
            covered.insert(resolved.route.key());
        }
        let seed = [
            Function::Contacts,
            Function::Groups,
            Function::Templates,
            Function::Campaigns,
            Function::Messages,
            Function::Webhooks,
        ];
        for route in routes().filter(|r| seed.contains(&r.function())) {
            assert!(covered.contains(&route.key()), "{route:?} has no procedure");
        }
        assert_eq!(table().len(), names.len());
    }

    #[test]
    fn the_seed_procedures_are_served() {
        let seed = [
            "contacts.list contacts.getById contacts.create contacts.update contacts.delete",
            "groups.list groups.getById groups.create groups.update groups.delete",
            "groups.addContacts groups.removeContacts",
            "messageTemplates.list messageTemplates.getById messageTemplates.create",
            "messageTemplates.update messageTemplates.delete",
            "campaigns.list campaigns.getById campaigns.create campaigns.update campaigns.delete",
            "campaigns.start campaigns.cancel",
            "webhooks.list webhooks.getById webhooks.create webhooks.update webhooks.delete",
            "webhooks.regenerateSecret webhooks.getLogs",
            "messagesHistory.list messagesHistory.getById messagesHistory.create",
            "messagesHistory.updateStatus",
        ];
        for name in seed.iter().flat_map(|line| line.split(' ')) {
            assert!(table().contains_key(name), "{name}");
        }
        let list = &table()["contacts.list"].shape;
        assert_eq!(
            list.query,
            ["limit", "offset", "cursor", "search", "groupId"]
        );
        assert!(!list.body && table()["contacts.update"].shape.body);
        assert!(table()["campaigns.start"].route.wakes_sender);
    }

    fn outer(method: &str, uri: &str) -> Request {
        let req = http::Request::builder()
            .method(method)
            .uri(uri)
            .header("x-tenant-id", "00000000-0000-0000-0000-000000000001")
            .body(Body::Empty)
            .unwrap();
        req.with_request_context(RequestContext::ApiGatewayV2(Default::default()))
    }

    #[test]
    fn a_call_becomes_its_route_request() {
        let outer = outer("GET", "/api/trpc/contacts.getById");
        let call = Call {
            path: "contacts.getById".into(),
            input: Ok(Some(serde_json::json!({"id": "abc", "tenantId": "t"}))),
        };
        let req = rest_request(&outer, &call, false, false).unwrap();
        assert_eq!(req.method(), "GET");
        assert_eq!(req.uri(), "/api/contacts/abc?tenantId=t");
        assert_eq!(request::query(&req, "tenantId"), Some("t"));
        assert_eq!(req.path_parameters_ref().unwrap().first("id"), Some("abc"));
        assert_eq!(request::route_key(&req), "GET /api/contacts/{id}");
        assert!(request::header(&req, "x-tenant-id").is_some());
    }

    #[test]
    fn wrong_methods_unknown_procedures_and_unbatched_streams_are_refused() {
        let status = |method: &str, path: &str, batch: bool, stream: bool| {
            let call = Call {
                path: path.into(),
                input: Ok(None),
            };
            let outer = outer(method, &format!("/api/trpc/{path}"));
            rest_request(&outer, &call, batch, stream)
                .unwrap_err()
                .status()
        };
        assert_eq!(status("GET", "contacts.create", false, false), 405);
        assert_eq!(status("POST", "contacts.list", false, false), 405);
        assert_eq!(status("GET", "contacts.nope", false, false), 404);
        assert_eq!(status("GET", "contacts.list", false, true), 400);
    }

    #[test]
    fn headers_carried_are_the_latest_rate_and_the_longest_retry() {
        let mut into = HeaderMap::new();
        for (remaining, retry) in [(5u32, Some(3u32)), (4, Some(1)), (3, None)] {
            let mut response = Response::new(Body::Empty);
            let headers = response.headers_mut();
            headers.insert("ratelimit-remaining", HeaderValue::from(remaining));
            if let Some(retry) = retry {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(retry));
            }
            carry_headers(&response, &mut into);
        }
        assert_eq!(into["ratelimit-remaining"], "3");
        assert_eq!(into[header::RETRY_AFTER], "3");
    }
}
