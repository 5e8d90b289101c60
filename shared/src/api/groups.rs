//! The groups function: groups.
//!
//! Not yet implemented: every route answers 404 until its handler lands.

use super::Function::Groups;
use super::Route;
use crate::App;
use crate::http::{Body, Problem, Request, Response};

pub const ROUTES: &[Route] = &[
    Route::new("GET", "/api/groups", Groups),
    Route::new("POST", "/api/groups", Groups),
    Route::new("GET", "/api/groups/{id}", Groups),
    Route::new("PATCH", "/api/groups/{id}", Groups),
    Route::new("DELETE", "/api/groups/{id}", Groups),
    Route::new("GET", "/api/groups/{id}/contacts", Groups),
    Route::new("POST", "/api/groups/{id}/contacts", Groups),
    Route::new("DELETE", "/api/groups/{id}/contacts", Groups),
];

/// This function's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi()]
pub struct Doc;

pub async fn handle(_app: &App, req: Request) -> Result<Response<Body>, Problem> {
    Err(super::no_route(&req))
}
