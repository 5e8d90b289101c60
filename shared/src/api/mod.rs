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

    pub async fn handle(self, app: &App, req: Request) -> Result<Response<Body>, Problem> {
        match self {
            Function::Contacts => contacts::handle(app, req).await,
            Function::Groups => groups::handle(app, req).await,
            Function::Templates => templates::handle(app, req).await,
            Function::Campaigns => campaigns::handle(app, req).await,
            Function::Messages => messages::handle(app, req).await,
            Function::Webhooks => webhooks::handle(app, req).await,
            Function::Tenants => tenants::handle(app, req).await,
            Function::System => system::handle(app, req).await,
        }
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
