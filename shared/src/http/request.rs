//! Reading the parts of an API Gateway request that handlers need.

use lambda_http::RequestExt;
use lambda_http::request::RequestContext;

use super::{Problem, Request};

/// API Gateway's request id and route key (`GET /api/contacts/{id}`).
pub fn request_id_and_route(req: &Request) -> (String, String) {
    match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => (
            ctx.request_id.clone().unwrap_or_default(),
            ctx.route_key.clone().unwrap_or_default(),
        ),
        _ => (String::new(), String::new()),
    }
}

/// The route key of the request, which handlers dispatch on.
pub fn route_key(req: &Request) -> &str {
    match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.route_key.as_deref().unwrap_or(""),
        _ => "",
    }
}

/// A query-string parameter (the first, if repeated).
pub fn query<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.query_string_parameters_ref()?.first(name)
}

/// A path parameter that must be a UUID.
pub fn path_uuid(req: &Request, name: &str) -> Result<uuid::Uuid, Problem> {
    let raw = req
        .path_parameters_ref()
        .and_then(|p| p.first(name))
        .unwrap_or("");
    uuid::Uuid::try_parse(raw)
        .map_err(|_| Problem::malformed(format!("path parameter `{name}` must be a UUID")))
}

/// A header's value as text.
pub fn header<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}
