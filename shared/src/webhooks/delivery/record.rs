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

/// Records a tenant's finished attempts in one transaction, a statement per kind of row
/// rather than per attempt (the deliverer's cost is here, not in the HTTP).
pub async fn record_all(
    db: &Database,
    tenant: Uuid,
    done: &[(Delivery, Attempt)],
    options: &Options,
) -> Result<(), sqlx::Error> {
    if done.is_empty() {
        return Ok(());
    }
    let batch = Batch::of(done, options);
    let mut tx = db.begin_service(tenant, "webhooks").await?;
    insert_logs(&mut tx, &batch.columns).await?;
    settle(&mut tx, &batch.columns).await?;
    update_health(&mut tx, &batch, options).await?;
    events::emit_all(&mut tx, EventType::WebhookTriggered, &batch.triggered).await?;
    tx.commit().await
}

/// A batch of attempts as rows to write, events to emit and webhooks whose health changed.
struct Batch<'a> {
    columns: Columns,
    triggered: Vec<Triggered<'a>>,
    /// Webhooks with a success in the batch, with a 410 Gone, and with other failures.
    healthy: Vec<Uuid>,
    gone: Vec<Uuid>,
    failing: Vec<Uuid>,
}

impl<'a> Batch<'a> {
    fn of(done: &'a [(Delivery, Attempt)], options: &Options) -> Batch<'a> {
        let mut batch = Batch {
            columns: Columns::default(),
            triggered: Vec::with_capacity(done.len()),
            healthy: Vec::new(),
            gone: Vec::new(),
            failing: Vec::new(),
        };
        for (delivery, attempt) in done {
            let retry_in = if attempt.succeeded() || attempt.gone() {
                None
            } else {
                let attempts = delivery.attempts.max(0) as u32;
                options
                    .schedule
                    .after_failure(attempts, attempt.retry_after)
            };
            let status = match (attempt.succeeded(), retry_in) {
                (true, _) => "succeeded",
                (false, Some(_)) => "pending",
                (false, None) => "failed",
            };
            let log_id = Uuid::now_v7();
            let retry = retry_in.map(|d| d.as_secs_f64());
            batch.columns.push(log_id, delivery, attempt, status, retry);
            batch
                .triggered
                .push(Triggered::of(log_id, delivery, attempt, retry.is_some()));
            let list = match (attempt.succeeded(), attempt.gone()) {
                (true, _) => &mut batch.healthy,
                (false, true) => &mut batch.gone,
                (false, false) => &mut batch.failing,
            };
            if !list.contains(&delivery.webhook_id) {
                list.push(delivery.webhook_id);
            }
        }
        batch
    }
}

impl<'a> Triggered<'a> {
    fn of(log_id: Uuid, delivery: &'a Delivery, attempt: &'a Attempt, will_retry: bool) -> Self {
        Triggered {
            webhook_id: delivery.webhook_id,
            log_id,
            event_id: delivery.event_id,
            event_type: &delivery.event_type,
            attempt: delivery.attempts,
            success: attempt.succeeded(),
            status_code: attempt.status,
            duration_ms: attempt.duration.as_millis() as u64,
            error: attempt.error.as_deref(),
            will_retry,
        }
    }
}

async fn insert_logs(tx: &mut TenantTx, logs: &Columns) -> Result<(), sqlx::Error> {
    let tenant = tx.tenant();
    sqlx::query(
        "INSERT INTO webhook_logs (tenant_id, id, webhook_id, event_id, event_type, attempt,
                                   status_code, duration_ms, response_body, error)
         SELECT $1, * FROM unnest($2::uuid[], $3::uuid[], $4::uuid[], $5::text[], $6::int4[],
                                  $7::int4[], $8::int4[], $9::text[], $10::text[])",
    )
    .bind(tenant)
    .bind(&logs.log_ids)
    .bind(&logs.webhooks)
    .bind(&logs.events)
    .bind(&logs.types)
    .bind(&logs.attempts)
    .bind(&logs.codes)
    .bind(&logs.durations)
    .bind(&logs.bodies)
    .bind(&logs.errors)
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Each delivery's next state (done, retry at, given up), only while the claim is still
/// ours: a deliverer whose lease ran out and whose row was claimed again leaves it to the
/// one that holds it now.
async fn settle(tx: &mut TenantTx, logs: &Columns) -> Result<(), sqlx::Error> {
    let tenant = tx.tenant();
    // `id = ANY` keeps the planner on the primary key; joined to `unnest` alone it scans
    // the whole table.
    sqlx::query(
        "UPDATE webhook_deliveries d
         SET status = u.status, locked_until = NULL, updated_at = now(),
             next_attempt_at = CASE WHEN u.retry IS NULL THEN d.next_attempt_at
                                    ELSE now() + make_interval(secs => u.retry) END
         FROM unnest($2::uuid[], $3::int4[], $4::text[], $5::float8[]) AS u(id, attempts, status, retry)
         WHERE d.tenant_id = $1 AND d.id = ANY($2) AND d.id = u.id
           AND d.attempts = u.attempts AND d.status = 'pending'",
    )
    .bind(tenant)
    .bind(&logs.deliveries)
    .bind(&logs.attempts)
    .bind(&logs.statuses)
    .bind(&logs.retries)
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Healthy again after a success; disabled on 410 Gone or after failing too long.
async fn update_health(
    tx: &mut TenantTx,
    batch: &Batch<'_>,
    options: &Options,
) -> Result<(), sqlx::Error> {
    store::mark_healthy(tx, &batch.healthy).await?;
    for webhook in &batch.gone {
        disable(tx, *webhook, "the endpoint answered 410 Gone").await?;
    }
    for webhook in batch.failing.iter().filter(|w| !batch.healthy.contains(*w)) {
        if let Some(since) = store::mark_failing(tx, *webhook).await? {
            let failing_for = time::OffsetDateTime::now_utc() - since;
            if failing_for >= options.disable_after {
                let days = options.disable_after.as_secs() / 86_400;
                let reason = format!("every delivery failed for {days} days");
                disable(tx, *webhook, &reason).await?;
            }
        }
    }
    Ok(())
}

/// The attempts of one batch, column by column, for `unnest`.
#[derive(Default)]
struct Columns {
    log_ids: Vec<Uuid>,
    deliveries: Vec<Uuid>,
    webhooks: Vec<Uuid>,
    events: Vec<Uuid>,
    types: Vec<String>,
    attempts: Vec<i32>,
    codes: Vec<Option<i32>>,
    durations: Vec<i32>,
    bodies: Vec<Option<String>>,
    errors: Vec<Option<String>>,
    statuses: Vec<&'static str>,
    retries: Vec<Option<f64>>,
}

impl Columns {
    fn push(
        &mut self,
        log_id: Uuid,
        delivery: &Delivery,
        attempt: &Attempt,
        status: &'static str,
        retry: Option<f64>,
    ) {
        self.log_ids.push(log_id);
        self.deliveries.push(delivery.id);
        self.webhooks.push(delivery.webhook_id);
        self.events.push(delivery.event_id);
        self.types.push(delivery.event_type.clone());
        self.attempts.push(delivery.attempts);
        self.codes.push(attempt.status.map(i32::from));
        self.durations
            .push(attempt.duration.as_millis().min(i32::MAX as u128) as i32);
        self.bodies.push(attempt.response.clone());
        self.errors.push(attempt.error.clone());
        self.statuses.push(status);
        self.retries.push(retry);
    }
}

async fn disable(tx: &mut TenantTx, webhook: Uuid, reason: &str) -> Result<(), sqlx::Error> {
    if let Some(row) = store::disable(tx, webhook, reason).await? {
        events::emit(tx, EventType::WebhookUpdated, &row.masked()).await?;
    }
    Ok(())
}

/// Deliveries whose webhook was disabled or deleted after they were queued are not sent.
pub async fn cancel(db: &Database, tenant: Uuid, ids: &[Uuid]) -> Result<(), sqlx::Error> {
    let mut tx = db.begin_service(tenant, "webhooks").await?;
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
