//! The route table's entries and the matching of requests against them.
//!
//! A route's method and path are those of its handler's `#[utoipa::path]`: the OpenAPI
//! operation, the dispatch and the local gateway cannot disagree, because they read the same
//! declaration.

use std::collections::HashMap;

use lambda_http::RequestExt;
use utoipa::openapi::path::HttpMethod;

use super::{Function, HandlerFuture};
use crate::App;
use crate::http::{Request, request};

/// A handler: the request in, the response or the problem out.
pub type Handler = for<'a> fn(&'a App, &'a Request) -> HandlerFuture<'a>;

/// Where a route is: its function, and its handler's method and path. Holds no handler, so
/// every binary may link every place (to tell a caller which function serves a path).
#[derive(Clone, Copy)]
pub struct Place {
    pub function: Function,
    operation_path: fn() -> String,
    operation_methods: fn() -> Vec<HttpMethod>,
}

impl Place {
    /// The place of the handler whose `#[utoipa::path]` generated `P`.
    pub const fn new<P: utoipa::Path>(function: Function) -> Place {
        Place {
            function,
            operation_path: P::path,
            operation_methods: P::methods,
        }
    }

    /// `GET`, `POST`, … (one per route: no handler declares two).
    pub fn method(&self) -> &'static str {
        match (self.operation_methods)().first() {
            Some(HttpMethod::Get) => "GET",
            Some(HttpMethod::Post) => "POST",
            Some(HttpMethod::Put) => "PUT",
            Some(HttpMethod::Patch) => "PATCH",
            Some(HttpMethod::Delete) => "DELETE",
            Some(HttpMethod::Head) => "HEAD",
            Some(HttpMethod::Options) => "OPTIONS",
            Some(HttpMethod::Trace) | None => "TRACE",
        }
    }

    /// API Gateway's path template: `{name}` matches one segment.
    pub fn path(&self) -> String {
        (self.operation_path)()
    }

    /// API Gateway's route key, e.g. `GET /api/contacts/{id}`.
    pub fn key(&self) -> String {
        format!("{} {}", self.method(), self.path())
    }
}

/// One HTTP API route: where it is, its handler, and what Herald must know about it beyond
/// method and path.
#[derive(Clone, Copy)]
pub struct Route {
    pub place: Place,
    pub handler: Handler,
    /// Acts outside any one tenant: no `X-Tenant-ID`, no `Idempotency-Key`.
    pub tenantless: bool,
    /// Queues messages: the sender has work after it succeeds.
    pub wakes_sender: bool,
    /// Answers a secret shown once (a new API key): its answer is never stored, so it takes
    /// no `Idempotency-Key`.
    pub secret_answer: bool,
}

impl Route {
    /// The route of the handler whose `#[utoipa::path]` generated `P`.
    pub const fn new<P: utoipa::Path>(function: Function, handler: Handler) -> Route {
        Route {
            place: Place::new::<P>(function),
            handler,
            tenantless: false,
            wakes_sender: false,
            secret_answer: false,
        }
    }

    pub const fn tenantless(mut self) -> Route {
        self.tenantless = true;
        self
    }

    pub const fn wakes_sender(mut self) -> Route {
        self.wakes_sender = true;
        self
    }

    pub const fn secret_answer(mut self) -> Route {
        self.secret_answer = true;
        self
    }

    pub fn function(&self) -> Function {
        self.place.function
    }

    pub fn method(&self) -> &'static str {
        self.place.method()
    }

    pub fn path(&self) -> String {
        self.place.path()
    }

    pub fn key(&self) -> String {
        self.place.key()
    }
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Route").field(&self.key()).finish()
    }
}

/// A tRPC procedure of the seed (`contacts.getById`) and the route that answers it. Its
/// inputs are the route's: path parameters, query parameters and body fields by name.
#[derive(Clone, Copy)]
pub struct Procedure {
    pub name: &'static str,
    pub place: Place,
    /// The route's OpenAPI operation: which query parameters it reads, whether it has a body.
    pub operation: fn() -> utoipa::openapi::path::Operation,
    /// The input field that is the whole body (`contacts.import`'s rows, an array), when
    /// the body is not the remaining fields.
    pub body_field: Option<&'static str>,
}

impl Procedure {
    /// The procedure `name` answered by the handler whose `#[utoipa::path]` generated `P`.
    pub const fn new<P: utoipa::Path>(function: Function, name: &'static str) -> Procedure {
        Procedure {
            name,
            place: Place::new::<P>(function),
            operation: P::operation,
            body_field: None,
        }
    }

    pub const fn body_from(mut self, field: &'static str) -> Procedure {
        self.body_field = Some(field);
        self
    }

    /// tRPC's kind: reads are queries (GET), everything else mutations (POST).
    pub fn is_query(&self) -> bool {
        self.place.method() == "GET"
    }
}

impl std::fmt::Debug for Procedure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Procedure")
            .field(&self.name)
            .field(&self.place.key())
            .finish()
    }
}

/// A set of routes resolved once (their keys and templates), for matching requests.
pub struct Router {
    entries: Vec<Entry>,
}

struct Entry {
    route: &'static Route,
    method: &'static str,
    key: String,
    template: Vec<String>,
}

/// The route a request is for, and the path parameters bound by matching its path.
pub struct Matched<'r> {
    pub route: &'static Route,
    pub key: &'r str,
    pub params: Option<HashMap<String, String>>,
}

impl Router {
    pub fn new(routes: impl IntoIterator<Item = &'static Route>) -> Router {
        let entries = routes
            .into_iter()
            .map(|route| {
                let path = route.path();
                Entry {
                    route,
                    method: route.method(),
                    key: format!("{} {path}", route.method()),
                    template: path.split('/').map(str::to_owned).collect(),
                }
            })
            .collect();
        Router { entries }
    }

    /// By API Gateway's route key when it names one of these routes; else (`$default`,
    /// function URLs, `cargo lambda watch`) by method and path, binding path parameters.
    pub fn find(&self, req: &Request) -> Option<Matched<'_>> {
        let key = request::route_key(req);
        if let Some(entry) = self.entries.iter().find(|e| e.key == key) {
            return Some(entry.matched(None));
        }
        let path = match req.raw_http_path() {
            "" => req.uri().path(),
            raw => raw,
        };
        self.find_path(req.method().as_str(), path)
    }

    /// Matching as API Gateway does: `{name}` binds one non-empty segment, and the most
    /// literal template wins.
    pub fn find_path(&self, method: &str, path: &str) -> Option<Matched<'_>> {
        let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        self.entries
            .iter()
            .filter(|e| e.method == method)
            .filter_map(|e| e.bind(&segments).map(|params| (e, params)))
            .min_by_key(|(_, params)| params.len())
            .map(|(e, params)| e.matched(Some(params)))
    }
}

impl Entry {
    fn matched(&self, params: Option<HashMap<String, String>>) -> Matched<'_> {
        Matched {
            route: self.route,
            key: &self.key,
            params,
        }
    }

    fn bind(&self, segments: &[&str]) -> Option<HashMap<String, String>> {
        bind(&self.template, segments)
    }
}

/// The parameters `segments` bind in `template` (split at `/`), if it matches.
fn bind<T: AsRef<str>>(template: &[T], segments: &[&str]) -> Option<HashMap<String, String>> {
    if template.len() != segments.len() {
        return None;
    }
    let mut params = HashMap::new();
    for (t, s) in template.iter().zip(segments) {
        let t = t.as_ref();
        match t.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
            Some(name) if !s.is_empty() => {
                params.insert(name.to_owned(), percent_decode(s));
            }
            Some(_) => return None,
            None if t == *s => {}
            None => return None,
        }
    }
    Some(params)
}

/// The function whose route `method` and `path` are, among `places`.
pub fn serving<'p>(
    places: impl IntoIterator<Item = &'p Place>,
    method: &str,
    path: &str,
) -> Option<Function> {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    places.into_iter().find_map(|place| {
        let template = place.path();
        let template: Vec<&str> = template.split('/').collect();
        (place.method() == method && bind(&template, &segments).is_some()).then_some(place.function)
    })
}

/// Path segments are percent-encoded, not form-encoded: `+` is a plus sign, not a space.
fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::api::{ENDPOINTS, routes};

    fn request(method: &str, path: &str, route_key: &str) -> Request {
        let mut context = aws_lambda_events::apigw::ApiGatewayV2httpRequestContext::default();
        context.route_key = Some(route_key.to_owned());
        let req = http::Request::builder()
            .method(method)
            .uri(path)
            .body(crate::http::Body::Empty)
            .unwrap();
        req.with_request_context(lambda_http::request::RequestContext::ApiGatewayV2(context))
    }

    /// A path for `template` with `{name}` filled in as `name-value`.
    fn concrete(template: &str) -> String {
        template
            .split('/')
            .map(
                |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    Some(name) => format!("{name}-value"),
                    None => s.to_owned(),
                },
            )
            .collect::<Vec<_>>()
            .join("/")
    }

    /// Every route reaches its own entry in its function, by API Gateway's route key and by
    /// method and path (`$default`), with its parameters bound; no key is declared twice.
    #[test]
    fn every_route_reaches_its_own_handler_by_key_and_by_path() {
        let mut keys = HashSet::new();
        for endpoint in ENDPOINTS {
            let router = Router::new(endpoint.routes);
            for route in endpoint.routes {
                assert_eq!(route.function(), endpoint.function, "{route:?}");
                assert!(keys.insert(route.key()), "{route:?} declared twice");
                let path = concrete(&route.path());
                for key in [route.key().as_str(), "$default", ""] {
                    let req = request(route.method(), &path, key);
                    let found = router
                        .find(&req)
                        .unwrap_or_else(|| panic!("{route:?} {key}"));
                    assert_eq!(found.key, route.key(), "{key} {path}");
                    assert!(std::ptr::fn_addr_eq(found.route.handler, route.handler));
                    let bound = found.params.unwrap_or_default();
                    if key.starts_with(route.method()) {
                        assert!(bound.is_empty(), "API Gateway binds them");
                    } else {
                        for (name, value) in &bound {
                            assert_eq!(value, &format!("{name}-value"));
                        }
                        assert_eq!(bound.len(), route.path().matches('{').count());
                    }
                }
            }
        }
        assert_eq!(keys.len(), routes().count());
    }

    #[test]
    fn paths_match_as_api_gateway_matches_them() {
        let router = Router::new(routes());
        let m = router.find_path("GET", "/api/contacts/abc").unwrap();
        assert_eq!(m.key, "GET /api/contacts/{id}");
        assert_eq!(m.params.unwrap()["id"], "abc");
        let m = router.find_path("PUT", "/api/tenant/members/auth0%7Cab+c%26d");
        assert_eq!(m.unwrap().params.unwrap()["sub"], "auth0|ab+c&d");
        let m = router.find_path("POST", "/api/contacts/import/").unwrap();
        assert_eq!(m.key, "POST /api/contacts/import");
        assert!(router.find_path("PUT", "/api/contacts").is_none());
        assert!(router.find_path("GET", "/api/contacts//x").is_none());
        assert!(router.find_path("GET", "/nope").is_none());
    }

    #[test]
    fn a_path_of_another_function_names_that_function() {
        use crate::api::{Function, no_route};
        let req = request("GET", "/api/contacts/x", "$default");
        let detail = no_route(&req, Function::System).detail.unwrap();
        assert!(
            detail.contains("served by the contacts function, not system"),
            "{detail}"
        );
        let problem = no_route(&request("GET", "/nowhere", "$default"), Function::System);
        assert_eq!(problem.detail.unwrap(), "no route for GET /nowhere");
    }

    #[test]
    fn facts_are_where_the_design_puts_them() {
        let with = |fact: fn(&Route) -> bool| {
            let mut keys: Vec<String> = routes().filter(|r| fact(r)).map(Route::key).collect();
            keys.sort();
            keys
        };
        assert_eq!(
            with(|r| r.wakes_sender),
            [
                "POST /api/campaigns/{id}/resume",
                "POST /api/campaigns/{id}/start",
                "POST /api/messages",
            ]
        );
        assert_eq!(
            with(|r| r.tenantless),
            [
                "GET /api/locales",
                "GET /api/openapi.json",
                "GET /api/tenants",
                "GET /health",
                "POST /api/providers/twilio/status",
                "POST /api/tenants",
            ]
        );
        assert_eq!(with(|r| r.secret_answer), ["POST /api/api-keys"]);
    }
}
