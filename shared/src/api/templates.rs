//! The templates function: message templates.
//!
//! Not yet implemented: every route answers 404 until its handler lands.

use super::Function::Templates;
use super::Route;
use crate::App;
use crate::http::{Body, Problem, Request, Response};

pub const ROUTES: &[Route] = &[
    Route::new("GET", "/api/templates", Templates),
    Route::new("POST", "/api/templates", Templates),
    Route::new("GET", "/api/templates/{id}", Templates),
    Route::new("PATCH", "/api/templates/{id}", Templates),
    Route::new("DELETE", "/api/templates/{id}", Templates),
    Route::new("POST", "/api/templates/{id}/preview", Templates),
];

/// This function's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi()]
pub struct Doc;

pub async fn handle(_app: &App, req: Request) -> Result<Response<Body>, Problem> {
    Err(super::no_route(&req))
}
