//! What an attempt leaves behind, in one transaction of the webhook's tenant: its
//! `webhook_logs` row, the delivery's next state (done, retry at, given up), the webhook's
//! health (failing since, disabled on 410 or after failing too long, with a
//! `webhook_updated` event) and a `webhook_triggered` event for WebSocket subscribers.

use serde::Serialize;
use uuid::Uuid;

use super::Options;
use super::deliver::{Attempt, Delivery};
use crate::db::{Database, TenantTx};
use crate::events::{self, EventType};
use crate::webhooks::store;

/// The `webhook_triggered` payload: one attempt, as the logs show it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Triggered<'a> {
    pub webhook_id: Uuid,
    pub log_id: Uuid,
    pub event_id: Uuid,
    pub event_type: &'a str,
    pub attempt: i32,
    pub success: bool,
    pub status_code: Option<u16>,
    pub duration_ms: u64,
    pub error: Option<&'a str>,
    /// Whether another attempt is scheduled.
    pub will_retry: bool,
}

pub async fn record(
    db: &Database,
    delivery: &Delivery,
    attempt: &Attempt,
    options: &Options,
) -> Result<(), sqlx::Error> {
    let mut tx = db.begin_system(delivery.tenant_id).await?;
    let log_id = Uuid::now_v7();
    let duration_ms = attempt.duration.as_millis().min(i32::MAX as u128) as i32;
    sqlx::query(
        "INSERT INTO webhook_logs (tenant_id, id, webhook_id, event_id, event_type, attempt,
                                   status_code, duration_ms, response_body, error)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(delivery.tenant_id)
    .bind(log_id)
    .bind(delivery.webhook_id)
    .bind(delivery.event_id)
    .bind(&delivery.event_type)
    .bind(delivery.attempts)
    .bind(attempt.status.map(i32::from))
    .bind(duration_ms)
    .bind(attempt.response.as_deref())
    .bind(attempt.error.as_deref())
    .execute(tx.conn())
    .await?;

    let retry_in = if attempt.succeeded() || attempt.gone() {
        None
    } else {
        options
            .schedule
            .after_failure(delivery.attempts.max(0) as u32, attempt.retry_after)
    };
    let status = match (attempt.succeeded(), retry_in) {
        (true, _) => "succeeded",
        (false, Some(_)) => "pending",
        (false, None) => "failed",
    };
    // Only while the claim is still ours: a deliverer whose lease ran out and was claimed
    // again leaves the row to the one that holds it now.
    sqlx::query(
        "UPDATE webhook_deliveries
         SET status = $4, locked_until = NULL, updated_at = now(),
             next_attempt_at = CASE WHEN $5::float8 IS NULL THEN next_attempt_at
                                    ELSE now() + make_interval(secs => $5) END
         WHERE tenant_id = $1 AND id = $2 AND attempts = $3 AND status = 'pending'",
    )
    .bind(delivery.tenant_id)
    .bind(delivery.id)
    .bind(delivery.attempts)
    .bind(status)
    .bind(retry_in.map(|d| d.as_secs_f64()))
    .execute(tx.conn())
    .await?;

    if attempt.succeeded() {
        store::mark_healthy(&mut tx, delivery.webhook_id).await?;
    } else if attempt.gone() {
        disable(
            &mut tx,
            delivery.webhook_id,
            "the endpoint answered 410 Gone",
        )
        .await?;
    } else if let Some(since) = store::mark_failing(&mut tx, delivery.webhook_id).await? {
        let failing_for = time::OffsetDateTime::now_utc() - since;
        if failing_for >= options.disable_after {
            let days = options.disable_after.as_secs() / 86_400;
            let reason = format!("every delivery failed for {days} days");
            disable(&mut tx, delivery.webhook_id, &reason).await?;
        }
    }

    events::emit(
        &mut tx,
        EventType::WebhookTriggered,
        &Triggered {
            webhook_id: delivery.webhook_id,
            log_id,
            event_id: delivery.event_id,
            event_type: &delivery.event_type,
            attempt: delivery.attempts,
            success: attempt.succeeded(),
            status_code: attempt.status,
            duration_ms: attempt.duration.as_millis() as u64,
            error: attempt.error.as_deref(),
            will_retry: retry_in.is_some(),
        },
    )
    .await?;
    tx.commit().await
}

async fn disable(tx: &mut TenantTx, webhook: Uuid, reason: &str) -> Result<(), sqlx::Error> {
    if let Some(row) = store::disable(tx, webhook, reason).await? {
        events::emit(tx, EventType::WebhookUpdated, &row.masked()).await?;
    }
    Ok(())
}

/// Deliveries whose webhook was disabled or deleted after they were queued are not sent.
pub async fn cancel(db: &Database, tenant: Uuid, ids: &[Uuid]) -> Result<(), sqlx::Error> {
    let mut tx = db.begin_system(tenant).await?;
    sqlx::query(
        "UPDATE webhook_deliveries SET status = 'cancelled', locked_until = NULL, updated_at = now()
         WHERE tenant_id = $1 AND id = ANY($2)",
    )
    .bind(tenant)
    .bind(ids)
    .execute(tx.conn())
    .await?;
    tx.commit().await
}
