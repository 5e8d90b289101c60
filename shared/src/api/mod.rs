//! The HTTP API: the route table, and the handlers.
//!
//! Each function's module declares its routes once, with [`routes!`]: the handler (whose
//! `#[utoipa::path]` is its method, path and OpenAPI operation) and the route's facts.
//! Dispatch ([`Router`]), the local gateway, the OpenAPI document, `template.yaml`'s test,
//! the idempotency rules and the sender kick all read that table ([`routes`]).

/// Declares a function's routes: `handler`, `handler in module` (a handler of a sibling
/// module), each optionally with `[facts]` ([`Route::tenantless`], [`Route::wakes_sender`]).
/// Generates the module's `ROUTES`, its `ENDPOINT` and its OpenAPI part, `Doc`.
macro_rules! routes {
    ($function:ident: $($handler:ident $(in $module:ident)? $([$($fact:ident),*])?),* $(,)?) => {
        pub const ROUTES: &[$crate::api::Route] = &[$(
            $crate::api::Route::new::<pastey::paste!($($module::)? [<__path_ $handler>])>(
                $crate::api::Function::$function,
                |app, req| Box::pin($($module::)? $handler(app, req)),
            )$($(.$fact())*)?
        ),*];

        /// Where this function's routes are, without their handlers.
        pub const PLACES: &[$crate::api::Place] = &[$(
            $crate::api::Place::new::<pastey::paste!($($module::)? [<__path_ $handler>])>(
                $crate::api::Function::$function,
            )
        ),*];

        /// What this function's binary serves.
        pub const ENDPOINT: $crate::api::Endpoint = $crate::api::Endpoint {
            function: $crate::api::Function::$function,
            routes: ROUTES,
        };

        /// This function's part of the OpenAPI document.
        #[derive(utoipa::OpenApi)]
        #[openapi(paths($($($module::)? $handler),*))]
        pub struct Doc;
    };
}

/// Declares the seed's tRPC procedures over a function's routes, right below its `routes!`:
/// `handler => "router.procedure"`, optionally `[body = "field"]` ([`Procedure::body_from`]).
/// Generates the module's `PROCEDURES`; [`trpc`] serves them.
macro_rules! procedures {
    ($function:ident: $($handler:ident => $name:literal $([body = $field:literal])?),* $(,)?) => {
        /// The seed's tRPC procedures answered by these routes (see `api::trpc`).
        pub const PROCEDURES: &[$crate::api::Procedure] = &[$(
            $crate::api::Procedure::new::<pastey::paste!([<__path_ $handler>])>(
                $crate::api::Function::$function,
                $name,
            )$(.body_from($field))?
        ),*];
    };
}

/// Lists each HTTP function's module once: [`ENDPOINTS`] and [`docs`] come from this.
macro_rules! functions {
    ($($module:ident),* $(,)?) => {
        $(pub mod $module;)*

        /// Every HTTP function. A Lambda binary names only its own module's `ENDPOINT`, so
        /// that the linker keeps that function's handlers and drops the others.
        pub const ENDPOINTS: &[Endpoint] = &[$($module::ENDPOINT),*];

        /// Where every route is: what any binary may link to name the function of a path.
        pub const PLACES: &[&[Place]] = &[$($module::PLACES),*];

        /// Each function's part of the OpenAPI document (only the system function links it).
        pub fn docs() -> Vec<utoipa::openapi::OpenApi> {
            vec![$(<$module::Doc as utoipa::OpenApi>::openapi()),*]
        }
    };
}

functions!(
    contacts, groups, templates, campaigns, messages, webhooks, tenants, system,
);
pub mod history;
pub mod keys;
pub mod openapi;
pub mod provider;
mod route;
pub mod trpc;

pub use route::{Handler, Matched, Place, Procedure, Route, Router};

/// Every tRPC procedure, by function (the functions outside the seed, tenants and system,
/// have none).
pub const PROCEDURES: &[&[Procedure]] = &[
    contacts::PROCEDURES,
    groups::PROCEDURES,
    templates::PROCEDURES,
    campaigns::PROCEDURES,
    messages::PROCEDURES,
    webhooks::PROCEDURES,
];

use crate::http::problem::Kind;
use crate::http::{Body, Problem, Request, Response};

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
    /// The seed's tRPC procedures, over every other function's routes ([`trpc`]).
    Trpc,
}

impl Function {
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
            Function::Trpc => "trpc",
        }
    }

    /// The routes this function serves.
    pub fn routes(self) -> &'static [Route] {
        self.endpoint().routes
    }

    /// This function's endpoint. Only `herald-local`, which serves every route, calls this.
    pub fn endpoint(self) -> Endpoint {
        if self == Function::Trpc {
            return trpc::endpoint();
        }
        *ENDPOINTS
            .iter()
            .find(|e| e.function == self)
            .expect("every function is listed in `functions!`")
    }
}

/// What a handler returns: the response, or the problem that becomes one.
pub type HandlerFuture<'a> = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Response<Body>, Problem>> + Send + 'a>,
>;

/// One HTTP function: its name and routes.
#[derive(Clone, Copy)]
pub struct Endpoint {
    pub function: Function,
    pub routes: &'static [Route],
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Endpoint").field(&self.function).finish()
    }
}

/// Every route of every function.
pub fn routes() -> impl Iterator<Item = &'static Route> {
    ENDPOINTS.iter().flat_map(|e| e.routes)
}

/// Requests that match no route go to the system function under this route key, in AWS
/// (the HTTP API's `$default` route) and locally alike, so every miss is problem+json.
pub const DEFAULT_ROUTE: &str = "$default";

/// The answer for a request `function` does not serve: which function does, when one does
/// (a caller of the wrong function URL learns which one to call).
pub fn no_route(req: &Request, function: Function) -> Problem {
    let (method, path) = (req.method().as_str(), req.uri().path());
    let detail = match route::serving(PLACES.iter().copied().flatten(), method, path) {
        Some(other) if other != function => format!(
            "{method} {path} is served by the {} function, not {}",
            other.name(),
            function.name()
        ),
        _ => format!("no route for {method} {path}"),
    };
    Problem::new(Kind::RouteNotFound, detail)
}
