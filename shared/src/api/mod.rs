//! The HTTP API: which function serves which route, and the handlers.
//!
//! [`ROUTES`] is the route table of DESIGN.md. The local gateway matches requests against
//! it, `template.yaml` declares the same routes (a test compares them), and each function's
//! `handle` dispatches on API Gateway's route key.

pub mod contacts;
pub mod system;

use crate::App;
use crate::http::problem::Kind;
use crate::http::{Body, Problem, Request, Response, request};

/// The Lambda functions that serve HTTP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Function {
    Contacts,
    System,
}

impl Function {
    pub const ALL: [Function; 2] = [Function::Contacts, Function::System];

    pub fn name(self) -> &'static str {
        match self {
            Function::Contacts => "contacts",
            Function::System => "system",
        }
    }

    pub async fn handle(self, app: &App, req: Request) -> Result<Response<Body>, Problem> {
        match self {
            Function::Contacts => contacts::handle(app, req).await,
            Function::System => system::handle(app, req).await,
        }
    }
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
    const fn new(method: &'static str, path: &'static str, function: Function) -> Route {
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

use Function::{Contacts, System};

pub const ROUTES: &[Route] = &[
    Route::new("GET", "/api/contacts", Contacts),
    Route::new("POST", "/api/contacts", Contacts),
    Route::new("POST", "/api/contacts/import", Contacts),
    Route::new("GET", "/api/contacts/{id}", Contacts),
    Route::new("PATCH", "/api/contacts/{id}", Contacts),
    Route::new("DELETE", "/api/contacts/{id}", Contacts),
    Route::new("GET", "/health", System),
    Route::new("GET", "/api/locales", System),
    Route::new("GET", "/api/openapi.json", System),
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
