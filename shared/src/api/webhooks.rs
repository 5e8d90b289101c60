//! The webhooks function: webhook configuration and delivery logs.
//!
//! Secrets: a webhook's signing secret is shown in full only in the answers to create and to
//! `POST /api/webhooks/{id}/secret`; every other answer and every `webhook_*` event carries
//! it masked (`whsec_…abcd`).

use http::StatusCode;

use super::Function::Webhooks;
use super::Route;
use crate::App;
use crate::auth::Access;
use crate::events::{self, EventType};
use crate::http::paging::{self, Paging};
use crate::http::problem::ProblemDocument;
use crate::http::{Body, Problem, Request, Response, body, request, response};
use crate::webhooks::input::{CreateWebhook, NewWebhook, UpdateWebhook, WebhookPatch};
use crate::webhooks::store;
use crate::webhooks::{Secret, Webhook, WebhookLogPage, WebhookPage};

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
#[openapi(paths(list, create, get, update, delete, regenerate_secret, logs))]
pub struct Doc;

pub async fn handle(app: &App, req: Request) -> Result<Response<Body>, Problem> {
    match super::route_key(&req) {
        "GET /api/webhooks" => list(app, &req).await,
        "POST /api/webhooks" => create(app, &req).await,
        "GET /api/webhooks/{id}" => get(app, &req).await,
        "PATCH /api/webhooks/{id}" => update(app, &req).await,
        "DELETE /api/webhooks/{id}" => delete(app, &req).await,
        "POST /api/webhooks/{id}/secret" => regenerate_secret(app, &req).await,
        "GET /api/webhooks/{id}/logs" => logs(app, &req).await,
        _ => Err(super::no_route(&req)),
    }
}

/// List live webhooks, newest first. Secrets are masked.
#[utoipa::path(get, path = "/api/webhooks", tag = "webhooks",
    params(
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 200, description = "Page size, default 50"),
        ("offset" = Option<u32>, Query, minimum = 0, maximum = 100000, description = "Rows to skip; the answer then includes `total`"),
        ("cursor" = Option<String>, Query, description = "`nextCursor` of the previous page"),
    ),
    responses(
        (status = 200, body = WebhookPage),
        (status = "4XX", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub async fn list(app: &App, req: &Request) -> Result<Response<Body>, Problem> {
    let paging = Paging::from_request(req)?;
    let mut tx = app.begin(req, Access::Read).await?;
    let (rows, total) = store::list(&mut tx, &paging).await?;
    tx.commit().await?;

    let mut items: Vec<Webhook> = rows.iter().map(|r| r.masked()).collect();
    let next_cursor = paging::next_cursor(&mut items, paging.limit, |w| w.id);
    response::ok(&WebhookPage {
        items,
        total,
        next_cursor,
    })
}

/// Create a webhook. The answer is the only one, with regeneration's, that shows the
/// secret in full: keep it.
#[utoipa::path(post, path = "/api/webhooks", tag = "webhooks",
    request_body = CreateWebhook,
    responses(
        (status = 201, description = "Created; `secret` in full", body = Webhook),
        (status = "4XX", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub async fn create(app: &App, req: &Request) -> Result<Response<Body>, Problem> {
    let mut tx = app.begin(req, Access::Write).await?;
    let input: CreateWebhook = body::json(req)?;
    let new = NewWebhook::parse(input).map_err(Problem::invalid)?;
    let secret = new_secret()?;
    let row = store::insert(&mut tx, &new, &secret).await?;
    events::emit(&mut tx, EventType::WebhookCreated, &row.masked()).await?;
    tx.commit().await?;
    response::json(StatusCode::CREATED, &row.revealed())
}

/// Get one webhook (secret masked).
#[utoipa::path(get, path = "/api/webhooks/{id}", tag = "webhooks",
    params(("id" = uuid::Uuid, Path)),
    responses(
        (status = 200, body = Webhook),
        (status = 404, body = ProblemDocument, content_type = "application/problem+json"),
        (status = "4XX", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub async fn get(app: &App, req: &Request) -> Result<Response<Body>, Problem> {
    let id = request::path_uuid(req, "id")?;
    let mut tx = app.begin(req, Access::Read).await?;
    let row = store::get(&mut tx, id)
        .await?
        .ok_or_else(|| Problem::not_found("webhook"))?;
    tx.commit().await?;
    response::ok(&row.masked())
}

/// Change a webhook's URL, event types, description or enabled flag.
#[utoipa::path(patch, path = "/api/webhooks/{id}", tag = "webhooks",
    params(("id" = uuid::Uuid, Path)),
    request_body = UpdateWebhook,
    responses(
        (status = 200, body = Webhook),
        (status = 404, body = ProblemDocument, content_type = "application/problem+json"),
        (status = "4XX", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub async fn update(app: &App, req: &Request) -> Result<Response<Body>, Problem> {
    let id = request::path_uuid(req, "id")?;
    let mut tx = app.begin(req, Access::Write).await?;
    let input: UpdateWebhook = body::json(req)?;
    let patch = WebhookPatch::parse(input).map_err(Problem::invalid)?;
    let row = store::update(&mut tx, id, &patch)
        .await?
        .ok_or_else(|| Problem::not_found("webhook"))?;
    let webhook = row.masked();
    events::emit(&mut tx, EventType::WebhookUpdated, &webhook).await?;
    tx.commit().await?;
    response::ok(&webhook)
}

/// Delete a webhook (soft: no more deliveries; its logs stay in the database).
#[utoipa::path(delete, path = "/api/webhooks/{id}", tag = "webhooks",
    params(("id" = uuid::Uuid, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, body = ProblemDocument, content_type = "application/problem+json"),
        (status = "4XX", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub async fn delete(app: &App, req: &Request) -> Result<Response<Body>, Problem> {
    let id = request::path_uuid(req, "id")?;
    let mut tx = app.begin(req, Access::Write).await?;
    let row = store::soft_delete(&mut tx, id)
        .await?
        .ok_or_else(|| Problem::not_found("webhook"))?;
    events::emit(&mut tx, EventType::WebhookDeleted, &row.masked()).await?;
    tx.commit().await?;
    response::no_content()
}

/// Replace the signing secret (regenerateSecret). The answer shows the new secret in full;
/// the old one keeps signing for 24 hours (`previousSecretExpiresAt`). Emits
/// `webhook_updated`, with the secret masked.
#[utoipa::path(post, path = "/api/webhooks/{id}/secret", tag = "webhooks",
    params(("id" = uuid::Uuid, Path)),
    responses(
        (status = 200, description = "The webhook with its new `secret` in full", body = Webhook),
        (status = 404, body = ProblemDocument, content_type = "application/problem+json"),
        (status = "4XX", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub async fn regenerate_secret(app: &App, req: &Request) -> Result<Response<Body>, Problem> {
    let id = request::path_uuid(req, "id")?;
    let mut tx = app.begin(req, Access::Write).await?;
    let secret = new_secret()?;
    let row = store::regenerate_secret(&mut tx, id, &secret)
        .await?
        .ok_or_else(|| Problem::not_found("webhook"))?;
    events::emit(&mut tx, EventType::WebhookUpdated, &row.masked()).await?;
    tx.commit().await?;
    response::ok(&row.revealed())
}

/// A webhook's delivery attempts, newest first.
#[utoipa::path(get, path = "/api/webhooks/{id}/logs", tag = "webhooks",
    params(
        ("id" = uuid::Uuid, Path),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 200, description = "Page size, default 50"),
        ("offset" = Option<u32>, Query, minimum = 0, maximum = 100000, description = "Rows to skip; the answer then includes `total`"),
        ("cursor" = Option<String>, Query, description = "`nextCursor` of the previous page"),
    ),
    responses(
        (status = 200, body = WebhookLogPage),
        (status = 404, body = ProblemDocument, content_type = "application/problem+json"),
        (status = "4XX", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub async fn logs(app: &App, req: &Request) -> Result<Response<Body>, Problem> {
    let id = request::path_uuid(req, "id")?;
    let paging = Paging::from_request(req)?;
    let mut tx = app.begin(req, Access::Read).await?;
    if !store::exists(&mut tx, id).await? {
        return Err(Problem::not_found("webhook"));
    }
    let (mut items, total) = store::logs(&mut tx, id, &paging).await?;
    tx.commit().await?;

    let next_cursor = paging::next_cursor(&mut items, paging.limit, |l| l.id);
    response::ok(&WebhookLogPage {
        items,
        total,
        next_cursor,
    })
}

fn new_secret() -> Result<Secret, Problem> {
    Secret::generate().map_err(|e| {
        tracing::error!(error = %e, "no randomness for a webhook secret");
        Problem::internal()
    })
}
