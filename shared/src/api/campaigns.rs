//! The campaigns function: campaigns.
//!
//! Not yet implemented: every route answers 404 until its handler lands.

use super::Function::Campaigns;
use super::Route;
use crate::App;
use crate::http::{Body, Problem, Request, Response};

pub const ROUTES: &[Route] = &[
    Route::new("GET", "/api/campaigns", Campaigns),
    Route::new("POST", "/api/campaigns", Campaigns),
    Route::new("GET", "/api/campaigns/{id}", Campaigns),
    Route::new("PATCH", "/api/campaigns/{id}", Campaigns),
    Route::new("DELETE", "/api/campaigns/{id}", Campaigns),
    Route::new("POST", "/api/campaigns/{id}/start", Campaigns),
    Route::new("POST", "/api/campaigns/{id}/cancel", Campaigns),
    Route::new("POST", "/api/campaigns/{id}/pause", Campaigns),
    Route::new("POST", "/api/campaigns/{id}/resume", Campaigns),
];

/// This function's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi()]
pub struct Doc;

pub async fn handle(_app: &App, req: Request) -> Result<Response<Body>, Problem> {
    Err(super::no_route(&req))
}
