//! The tenants function: tenants and their members.
//!
//! Not yet implemented: every route answers 404 until its handler lands.

use super::Function::Tenants;
use super::Route;
use crate::App;
use crate::http::{Body, Problem, Request, Response};

pub const ROUTES: &[Route] = &[
    Route::new("POST", "/api/tenants", Tenants),
    Route::new("GET", "/api/tenants", Tenants),
    Route::new("GET", "/api/tenant/members", Tenants),
    Route::new("PUT", "/api/tenant/members/{sub}", Tenants),
    Route::new("DELETE", "/api/tenant/members/{sub}", Tenants),
];

/// This function's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi()]
pub struct Doc;

pub async fn handle(_app: &App, req: Request) -> Result<Response<Body>, Problem> {
    Err(super::no_route(&req))
}
