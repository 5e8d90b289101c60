//! The webhooks function: webhook configuration and delivery logs.
//!
//! Secrets: a webhook's signing secret is shown in full only in the answers to create and to
//! `POST /api/webhooks/{id}/secret`; every other answer and every `webhook_*` event carries
//! it masked (`whsec_…abcd`).

use http::StatusCode;

use crate::App;
use crate::auth::Access;
use crate::events::{self, EventType};
use crate::http::paging::{self, Paging};
use crate::http::problem::ProblemDocument;
use crate::http::{Body, Problem, Request, Response, body, request, response};
use crate::webhooks::input::{CreateWebhook, NewWebhook, UpdateWebhook, WebhookPatch};
use crate::webhooks::store::{self, Redelivery};
use crate::webhooks::target;
use crate::webhooks::{Secret, Webhook, WebhookLogPage, WebhookPage};

routes!(Webhooks:
    list,
    create,
    get,
    update,
    delete,
    regenerate_secret,
    logs,
    test,
    retry,
);

procedures!(Webhooks:
    list => "webhooks.list",
    get => "webhooks.getById",
    create => "webhooks.create",
    update => "webhooks.update",
    delete => "webhooks.delete",
    regenerate_secret => "webhooks.regenerateSecret",
    logs => "webhooks.getLogs",
    test => "webhooks.test",
    retry => "webhooks.retry",
);

/// List live webhooks, newest first. Secrets are masked.
#[utoipa::path(get, path = "/api/webhooks", tag = "webhooks",
    params(
        crate::http::paging::PageParams,
    ),
    responses(
        (status = 200, body = WebhookPage),
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
    ))]
pub async fn create(app: &App, req: &Request) -> Result<Response<Body>, Problem> {
    let mut tx = app.begin(req, Access::Write).await?;
    let input: CreateWebhook = body::json(req)?;
    let new = NewWebhook::parse(input).map_err(Problem::invalid)?;
    target::check(app.egress(), &new.url)
        .await
        .map_err(|e| Problem::invalid(vec![e]))?;
    let secret = new_secret()?;
    let row = store::insert(&mut tx, &new, &secret).await?;
    events::emit(&mut tx, EventType::WebhookCreated, &row.masked()).await?;
    tx.commit().await?;
    let created = row.revealed();
    response::created("/api/webhooks", created.id, &created)
}

/// Get one webhook (secret masked).
#[utoipa::path(get, path = "/api/webhooks/{id}", tag = "webhooks",
    params(("id" = uuid::Uuid, Path)),
    responses(
        (status = 200, body = Webhook),
        (status = 404, body = ProblemDocument, content_type = "application/problem+json"),
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
    ))]
pub async fn update(app: &App, req: &Request) -> Result<Response<Body>, Problem> {
    let id = request::path_uuid(req, "id")?;
    let mut tx = app.begin(req, Access::Write).await?;
    let input: UpdateWebhook = body::json(req)?;
    let patch = WebhookPatch::parse(input).map_err(Problem::invalid)?;
    if let Some(url) = &patch.url {
        target::check(app.egress(), url)
            .await
            .map_err(|e| Problem::invalid(vec![e]))?;
    }
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
        crate::http::paging::PageParams,
    ),
    responses(
        (status = 200, body = WebhookLogPage),
        (status = 404, body = ProblemDocument, content_type = "application/problem+json"),
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

/// What `test` and `retry` queued.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Queued {
    pub delivery_id: uuid::Uuid,
    /// The `webhook-id` the request carries; its attempts show in the logs under this id.
    pub event_id: uuid::Uuid,
}

/// Send a test event (type `webhook_test`, a made-up payload) to the webhook, whatever its
/// event types. Queued at once; its attempts appear in the logs as any delivery's.
#[utoipa::path(post, path = "/api/webhooks/{id}/test", tag = "webhooks",
    params(("id" = uuid::Uuid, Path)),
    responses(
        (status = 202, description = "Queued", body = Queued),
        (status = 404, body = ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "The webhook is disabled", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub async fn test(app: &App, req: &Request) -> Result<Response<Body>, Problem> {
    let id = request::path_uuid(req, "id")?;
    let mut tx = app.begin(req, Access::Write).await?;
    let row = live_enabled(&mut tx, id).await?;
    let event = uuid::Uuid::now_v7();
    let payload = serde_json::json!({
        "webhookId": row.id,
        "message": "A test event from Herald: your endpoint is reachable and can verify signatures.",
    });
    let delivery = store::queue_test(&mut tx, id, event, &payload).await?;
    tx.commit().await?;
    response::json(
        StatusCode::ACCEPTED,
        &Queued {
            delivery_id: delivery,
            event_id: event,
        },
    )
}

/// Deliver a logged event again now, by hand: same event, same `webhook-id`; one more
/// attempt, logged like the others.
#[utoipa::path(post, path = "/api/webhooks/{id}/logs/{logId}/retry", tag = "webhooks",
    params(("id" = uuid::Uuid, Path), ("logId" = uuid::Uuid, Path)),
    responses(
        (status = 202, description = "Queued", body = Queued),
        (status = 404, body = ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "The webhook is disabled, or this event is being delivered right now", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub async fn retry(app: &App, req: &Request) -> Result<Response<Body>, Problem> {
    let id = request::path_uuid(req, "id")?;
    let log = request::path_uuid(req, "logId")?;
    let mut tx = app.begin(req, Access::Write).await?;
    live_enabled(&mut tx, id).await?;
    let queued = match store::redeliver(&mut tx, id, log).await? {
        Redelivery::Queued { delivery, event } => Queued {
            delivery_id: delivery,
            event_id: event,
        },
        Redelivery::NoLog => return Err(Problem::not_found("webhook log")),
        Redelivery::InFlight => {
            return Err(Problem::conflict(
                "this event is being delivered right now; retry when the attempt is logged",
            ));
        }
    };
    tx.commit().await?;
    response::json(StatusCode::ACCEPTED, &queued)
}

/// A live webhook that takes deliveries: 404 when there is none, 409 when it is disabled.
async fn live_enabled(
    tx: &mut crate::db::TenantTx,
    id: uuid::Uuid,
) -> Result<crate::webhooks::WebhookRow, Problem> {
    let row = store::get(tx, id)
        .await?
        .ok_or_else(|| Problem::not_found("webhook"))?;
    if !row.enabled {
        return Err(Problem::conflict(
            "the webhook is disabled; enable it (PATCH enabled: true) first",
        ));
    }
    Ok(row)
}

fn new_secret() -> Result<Secret, Problem> {
    Secret::generate().map_err(|e| {
        tracing::error!(error = %e, "no randomness for a webhook secret");
        Problem::internal()
    })
}
