//! Webhook SQL. Every function takes a [`TenantTx`]; queries name the tenant explicitly as
//! well, so the planner uses the tenant-leading indexes (RLS is the guarantee, not the
//! filter).

use uuid::Uuid;

use super::input::{NewWebhook, WebhookPatch};
use super::{Secret, WebhookLog, WebhookRow};
use crate::db::{self, TenantTx};
use crate::http::Problem;

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
) -> Result<WebhookRow, Problem> {
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

pub async fn get(tx: &mut TenantTx, id: Uuid) -> Result<Option<WebhookRow>, Problem> {
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
) -> Result<(Vec<WebhookRow>, Option<i64>), Problem> {
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
) -> Result<Option<WebhookRow>, Problem> {
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
) -> Result<Option<WebhookRow>, Problem> {
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

pub async fn soft_delete(tx: &mut TenantTx, id: Uuid) -> Result<Option<WebhookRow>, Problem> {
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
pub async fn exists(tx: &mut TenantTx, id: Uuid) -> Result<bool, Problem> {
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
) -> Result<(Vec<WebhookLog>, Option<i64>), Problem> {
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
