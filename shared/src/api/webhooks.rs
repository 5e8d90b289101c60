//! The webhooks function: webhook configuration.
//!
//! Not yet implemented: every route answers 404 until its handler lands.

use super::Function::Webhooks;
use super::Route;
use crate::App;
use crate::http::{Body, Problem, Request, Response};

pub const ROUTES: &[Route] = &[
    Route::new("GET", "/api/webhooks", Webhooks),
    Route::new("POST", "/api/webhooks", Webhooks),
    Route::new("GET", "/api/webhooks/{id}", Webhooks),
    Route::new("PATCH", "/api/webhooks/{id}", Webhooks),
    Route::new("DELETE", "/api/webhooks/{id}", Webhooks),
    Route::new("POST", "/api/webhooks/{id}/secret", Webhooks),
    Route::new("GET", "/api/webhooks/{id}/logs", Webhooks),
];

/// This function's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi()]
pub struct Doc;

pub async fn handle(_app: &App, req: Request) -> Result<Response<Body>, Problem> {
    Err(super::no_route(&req))
}
