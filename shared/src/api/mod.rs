//! The HTTP API: which function serves which route, and the handlers.
//!
//! [`routes`] is the route table of DESIGN.md, gathered from each function's module. The
//! local gateway matches requests against it, `template.yaml` declares the same routes (a
//! test compares them), and each function's `handle` dispatches on API Gateway's route key.

pub mod campaigns;
pub mod contacts;
pub mod groups;
pub mod messages;
pub mod provider;
pub mod system;
pub mod templates;
pub mod tenants;
pub mod webhooks;

use crate::App;
use crate::http::problem::Kind;
use crate::http::{Body, Problem, Request, Response, request};

/// The Lambda functions that serve HTTP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Function {
    Contacts,
    Groups,
    Templates,
    Campaigns,
    Messages,
    Webhooks,
    Tenants,
    System,
}

impl Function {
    pub const ALL: [Function; 8] = [
        Function::Contacts,
        Function::Groups,
        Function::Templates,
        Function::Campaigns,
        Function::Messages,
        Function::Webhooks,
        Function::Tenants,
        Function::System,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Function::Contacts => "contacts",
            Function::Groups => "groups",
            Function::Templates => "templates",
            Function::Campaigns => "campaigns",
            Function::Messages => "messages",
            Function::Webhooks => "webhooks",
            Function::Tenants => "tenants",
            Function::System => "system",
        }
    }

    /// The routes this function serves.
    pub fn routes(self) -> &'static [Route] {
        match self {
            Function::Contacts => contacts::ROUTES,
            Function::Groups => groups::ROUTES,
            Function::Templates => templates::ROUTES,
            Function::Campaigns => campaigns::ROUTES,
            Function::Messages => messages::ROUTES,
            Function::Webhooks => webhooks::ROUTES,
            Function::Tenants => tenants::ROUTES,
            Function::System => system::ROUTES,
        }
    }

    /// This function's handler. Only `herald-local`, which serves every route, calls this;
    /// a Lambda binary names its own module's [`Endpoint`], so that the linker keeps that
    /// function's handlers and drops the other seven (bootstraps stay small).
    pub fn endpoint(self) -> Endpoint {
        match self {
            Function::Contacts => contacts::ENDPOINT,
            Function::Groups => groups::ENDPOINT,
            Function::Templates => templates::ENDPOINT,
            Function::Campaigns => campaigns::ENDPOINT,
            Function::Messages => messages::ENDPOINT,
            Function::Webhooks => webhooks::ENDPOINT,
            Function::Tenants => tenants::ENDPOINT,
            Function::System => system::ENDPOINT,
        }
    }
}

/// What a handler returns: the response, or the problem that becomes one.
pub type HandlerFuture<'a> = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Response<Body>, Problem>> + Send + 'a>,
>;

/// One HTTP function: its name and routes, and the handler that dispatches on the route key.
#[derive(Clone, Copy)]
pub struct Endpoint {
    pub function: Function,
    pub handler: for<'a> fn(&'a App, Request) -> HandlerFuture<'a>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Endpoint").field(&self.function).finish()
    }
}

/// Every route of every function.
pub fn routes() -> impl Iterator<Item = &'static Route> {
    Function::ALL.into_iter().flat_map(|f| f.routes())
}

/// One HTTP API route.
#[derive(Clone, Copy, Debug)]
pub struct Route {
    pub method: &'static str,
    /// API Gateway path template: `{name}` matches one segment.
    pub path: &'static str,
    pub function: Function,
}

impl Route {
    pub const fn new(method: &'static str, path: &'static str, function: Function) -> Route {
        Route {
            method,
            path,
            function,
        }
    }

    /// API Gateway's route key, e.g. `GET /api/contacts/{id}`.
    pub fn key(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// The routes that act outside any one tenant: they take no `X-Tenant-ID` (nor an
/// `Idempotency-Key`, which is scoped per tenant). Health, locales and this document need no
/// caller; tenants are created and listed from the caller's token alone; provider callbacks
/// are verified by the provider's signature (and idempotent by themselves: statuses only
/// move forward). Every other route opens its transaction through `App::begin`.
pub const TENANTLESS: &[&str] = &[
    "GET /health",
    "GET /api/locales",
    "GET /api/openapi.json",
    "POST /api/tenants",
    "GET /api/tenants",
    "POST /api/providers/twilio/status",
];

/// Requests that match no route go to the system function under this route key, in AWS
/// (the HTTP API's `$default` route) and locally alike, so every miss is problem+json.
pub const DEFAULT_ROUTE: &str = "$default";

/// The answer for a route key a function does not serve.
pub fn no_route(req: &Request) -> Problem {
    Problem::new(
        Kind::RouteNotFound,
        format!("no route for {} {}", req.method(), req.uri().path()),
    )
}

pub(crate) fn route_key(req: &Request) -> &str {
    request::route_key(req)
}
