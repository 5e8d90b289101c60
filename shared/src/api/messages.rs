//! The messages function: messages history.
//!
//! Not yet implemented: every route answers 404 until its handler lands.

use super::Function::Messages;
use super::Route;
use crate::App;
use crate::http::{Body, Problem, Request, Response};

pub const ROUTES: &[Route] = &[
    Route::new("GET", "/api/messages", Messages),
    Route::new("POST", "/api/messages", Messages),
    Route::new("GET", "/api/messages/{id}", Messages),
    Route::new("POST", "/api/messages/{id}/status", Messages),
];

/// This function's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi()]
pub struct Doc;

pub async fn handle(_app: &App, req: Request) -> Result<Response<Body>, Problem> {
    Err(super::no_route(&req))
}
