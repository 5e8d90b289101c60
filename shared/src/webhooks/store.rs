//! Webhook SQL. Every function takes a [`TenantTx`]; queries name the tenant explicitly as
//! well, so the planner uses the tenant-leading indexes (RLS is the guarantee, not the
//! filter).

use uuid::Uuid;

use super::input::{NewWebhook, WebhookPatch};
use super::{Secret, WebhookLog, WebhookRow};
use crate::db::StoreError;
use crate::db::{self, TenantTx};

/// The columns of [`WebhookRow`]; a macro so that statements stay `'static` strings. The
/// previous secret's expiry shows only while it is still in the future.
macro_rules! columns {
    () => {
        "id, tenant_id, url, description, event_types, enabled, secret,
         CASE WHEN previous_secret_expires_at > now() THEN previous_secret_expires_at END
             AS previous_secret_expires_at,
         disabled_reason, failing_since, created_at, updated_at, deleted_at"
    };
}

use crate::domain::Paging;

pub async fn insert(
    tx: &mut TenantTx,
    new: &NewWebhook,
    secret: &Secret,
) -> Result<WebhookRow, StoreError> {
    let tenant = tx.tenant();
    Ok(sqlx::query_as(concat!(
        "INSERT INTO webhooks (tenant_id, id, url, description, event_types, enabled, secret)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         RETURNING ",
        columns!()
    ))
    .bind(tenant)
    .bind(new.id)
    .bind(new.url.as_str())
    .bind(new.description.as_ref().map(|d| d.as_str()))
    .bind(new.event_types.names())
    .bind(new.enabled)
    .bind(secret.expose())
    .fetch_one(tx.conn())
    .await?)
}

pub async fn get(tx: &mut TenantTx, id: Uuid) -> Result<Option<WebhookRow>, StoreError> {
    let tenant = tx.tenant();
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        " FROM webhooks WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(tx.conn())
    .await?)
}

/// One page of live webhooks, newest first, plus the total when paging by offset.
pub async fn list(
    tx: &mut TenantTx,
    q: &Paging,
) -> Result<(Vec<WebhookRow>, Option<i64>), StoreError> {
    let tenant = tx.tenant();
    Ok(db::newest_first(tx, columns!(), *q, |sql| {
        sql.push("FROM webhooks WHERE tenant_id = ")
            .push_bind(tenant)
            .push(" AND deleted_at IS NULL");
    })
    .await?)
}

pub async fn update(
    tx: &mut TenantTx,
    id: Uuid,
    patch: &WebhookPatch,
) -> Result<Option<WebhookRow>, StoreError> {
    let tenant = tx.tenant();
    let description = patch
        .description
        .as_ref()
        .map(|d| d.as_ref().map(|d| d.as_str()));
    Ok(sqlx::query_as(concat!(
        "UPDATE webhooks SET
            url = coalesce($3, url),
            event_types = coalesce($4, event_types),
            description = CASE WHEN $5 THEN $6 ELSE description END,
            enabled = coalesce($7, enabled),
            -- Turning a webhook back on forgets why it was turned off.
            disabled_reason = CASE WHEN $7 THEN NULL ELSE disabled_reason END,
            failing_since = CASE WHEN $7 THEN NULL ELSE failing_since END,
            updated_at = now()
         WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL
         RETURNING ",
        columns!()
    ))
    .bind(tenant)
    .bind(id)
    .bind(patch.url.as_ref().map(|u| u.as_str()))
    .bind(patch.event_types.as_ref().map(|t| t.names()))
    .bind(description.is_some())
    .bind(description.flatten())
    .bind(patch.enabled)
    .fetch_optional(tx.conn())
    .await?)
}

/// Replaces the secret; the old one becomes the previous secret, which keeps signing for 24
/// hours so that receivers can roll over without a gap. Regenerating again within those
/// hours drops the older one for good.
pub async fn regenerate_secret(
    tx: &mut TenantTx,
    id: Uuid,
    secret: &Secret,
) -> Result<Option<WebhookRow>, StoreError> {
    let tenant = tx.tenant();
    Ok(sqlx::query_as(concat!(
        "UPDATE webhooks SET
            previous_secret = secret,
            previous_secret_expires_at = now() + interval '24 hours',
            secret = $3,
            updated_at = now()
         WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL
         RETURNING ",
        columns!()
    ))
    .bind(tenant)
    .bind(id)
    .bind(secret.expose())
    .fetch_optional(tx.conn())
    .await?)
}

pub async fn soft_delete(tx: &mut TenantTx, id: Uuid) -> Result<Option<WebhookRow>, StoreError> {
    let tenant = tx.tenant();
    Ok(sqlx::query_as(concat!(
        "UPDATE webhooks SET deleted_at = now(), updated_at = now()
         WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL
         RETURNING ",
        columns!()
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(tx.conn())
    .await?)
}

/// Whether a live webhook has this id.
pub async fn exists(tx: &mut TenantTx, id: Uuid) -> Result<bool, StoreError> {
    let tenant = tx.tenant();
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM webhooks
                        WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL)",
    )
    .bind(tenant)
    .bind(id)
    .fetch_one(tx.conn())
    .await?)
}

/// One page of a webhook's delivery logs, newest first (by `webhook_logs_by_webhook`).
pub async fn logs(
    tx: &mut TenantTx,
    webhook: Uuid,
    q: &Paging,
) -> Result<(Vec<WebhookLog>, Option<i64>), StoreError> {
    let tenant = tx.tenant();
    let columns = "id, webhook_id, event_id, event_type, attempt, status_code, duration_ms,
                   response_body, error, created_at";
    Ok(db::newest_first(tx, columns, *q, |sql| {
        sql.push("FROM webhook_logs WHERE tenant_id = ")
            .push_bind(tenant)
            .push(" AND webhook_id = ")
            .push_bind(webhook);
    })
    .await?)
}

/// After a failed delivery: the webhook has been failing since its first failure in a row.
/// Returns when that was.
pub async fn mark_failing(
    tx: &mut TenantTx,
    id: Uuid,
) -> Result<Option<time::OffsetDateTime>, sqlx::Error> {
    let tenant = tx.tenant();
    sqlx::query_scalar(
        "UPDATE webhooks SET failing_since = coalesce(failing_since, now())
         WHERE tenant_id = $1 AND id = $2
         RETURNING failing_since",
    )
    .bind(tenant)
    .bind(id)
    .fetch_optional(tx.conn())
    .await
}

/// After successful deliveries: these webhooks are no longer failing.
pub async fn mark_healthy(tx: &mut TenantTx, ids: &[Uuid]) -> Result<(), sqlx::Error> {
    if ids.is_empty() {
        return Ok(());
    }
    let tenant = tx.tenant();
    sqlx::query(
        "UPDATE webhooks SET failing_since = NULL
         WHERE tenant_id = $1 AND id = ANY($2) AND failing_since IS NOT NULL",
    )
    .bind(tenant)
    .bind(ids)
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Herald turns a webhook off itself (410 Gone, failing too long), saying why. `None` when
/// it was already off or gone.
pub async fn disable(
    tx: &mut TenantTx,
    id: Uuid,
    reason: &str,
) -> Result<Option<WebhookRow>, sqlx::Error> {
    let tenant = tx.tenant();
    sqlx::query_as(concat!(
        "UPDATE webhooks SET enabled = false, disabled_reason = $3, updated_at = now()
         WHERE tenant_id = $1 AND id = $2 AND enabled AND deleted_at IS NULL
         RETURNING ",
        columns!()
    ))
    .bind(tenant)
    .bind(id)
    .bind(reason)
    .fetch_optional(tx.conn())
    .await
}

/// Queues a delivery of an event made up for the purpose (`POST /api/webhooks/{id}/test`)
/// and wakes the deliverer at commit. Returns the delivery's id.
pub async fn queue_test(
    tx: &mut TenantTx,
    webhook: Uuid,
    event: Uuid,
    payload: &serde_json::Value,
) -> Result<Uuid, sqlx::Error> {
    let tenant = tx.tenant();
    let actor = sqlx::types::Json(tx.actor().clone());
    let id = sqlx::query_scalar(
        "INSERT INTO webhook_deliveries
             (tenant_id, webhook_id, event_id, event_type, payload, event_created_at, actor)
         VALUES ($1, $2, $3, 'webhook_test', $4, now(), $5)
         RETURNING id",
    )
    .bind(tenant)
    .bind(webhook)
    .bind(event)
    .bind(payload)
    .bind(actor)
    .fetch_one(tx.conn())
    .await?;
    wake_deliverer(tx).await?;
    Ok(id)
}

/// What asking to deliver a logged event again found.
pub enum Redelivery {
    /// Queued now; the delivery's id and the event's.
    Queued { delivery: Uuid, event: Uuid },
    /// No such log for this webhook.
    NoLog,
    /// An attempt is in flight right now.
    InFlight,
}

/// Queues the event of log `log` for another attempt now (`POST
/// /api/webhooks/{id}/logs/{logId}/retry`): same event, same `webhook-id`.
pub async fn redeliver(
    tx: &mut TenantTx,
    webhook: Uuid,
    log: Uuid,
) -> Result<Redelivery, sqlx::Error> {
    let tenant = tx.tenant();
    let event: Option<Uuid> = sqlx::query_scalar(
        "SELECT event_id FROM webhook_logs WHERE tenant_id = $1 AND id = $2 AND webhook_id = $3",
    )
    .bind(tenant)
    .bind(log)
    .bind(webhook)
    .fetch_optional(tx.conn())
    .await?;
    let Some(event) = event else {
        return Ok(Redelivery::NoLog);
    };
    let delivery: Option<Uuid> = sqlx::query_scalar(
        "UPDATE webhook_deliveries
         SET status = 'pending', next_attempt_at = now(), locked_until = NULL, updated_at = now()
         WHERE tenant_id = $1 AND webhook_id = $2 AND event_id = $3
           AND (locked_until IS NULL OR locked_until <= now())
         RETURNING id",
    )
    .bind(tenant)
    .bind(webhook)
    .bind(event)
    .fetch_optional(tx.conn())
    .await?;
    let Some(delivery) = delivery else {
        return Ok(Redelivery::InFlight);
    };
    wake_deliverer(tx).await?;
    Ok(Redelivery::Queued { delivery, event })
}

async fn wake_deliverer(tx: &mut TenantTx) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_notify('herald_webhook_deliveries', '')")
        .execute(tx.conn())
        .await?;
    Ok(())
}
