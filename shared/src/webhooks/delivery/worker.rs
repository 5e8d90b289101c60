//! Claiming due deliveries and working them off.
//!
//! Tenants with due deliveries are found through the `app.tenants_with_due_webhook_deliveries`
//! definer function (ids only); each tenant's deliveries are then claimed in that tenant's
//! own transaction with `FOR UPDATE SKIP LOCKED`, so several deliverers share the work
//! without sending anything twice at once. A claim counts the attempt and takes a lease; a
//! deliverer that dies mid-attempt leaves a lease that runs out, and the delivery is tried
//! again with the same `webhook-id`: at least once, never lost.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::Semaphore;
use uuid::Uuid;

use super::deliver::{self, Delivery};
use super::{Options, record};
use crate::db::Database;
use crate::net::egress::Egress;

/// The channel the outbox trigger notifies when it queues deliveries.
pub const CHANNEL: &str = "herald_webhook_deliveries";

/// What one round did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Round {
    /// Attempts made (successful or not).
    pub attempted: usize,
    /// Deliveries dropped because their webhook was disabled or deleted meanwhile.
    pub cancelled: usize,
}

/// Claims up to `options.batch` due deliveries of `tenant`, counting the attempt and
/// taking the lease, in one statement.
pub async fn claim(
    db: &Database,
    tenant: Uuid,
    options: &Options,
) -> Result<Vec<Delivery>, sqlx::Error> {
    let mut tx = db.begin_service(tenant, "webhooks").await?;
    let claimed: Vec<Delivery> = sqlx::query_as(
        "WITH due AS (
             SELECT tenant_id, id FROM webhook_deliveries
             WHERE tenant_id = $1 AND status = 'pending' AND next_attempt_at <= now()
               AND (locked_until IS NULL OR locked_until <= now())
             ORDER BY next_attempt_at
             LIMIT $2
             FOR UPDATE SKIP LOCKED
         )
         UPDATE webhook_deliveries d
         SET attempts = d.attempts + 1,
             locked_until = now() + make_interval(secs => $3),
             updated_at = now()
         FROM due, webhooks w
         WHERE d.tenant_id = due.tenant_id AND d.id = due.id
           AND w.tenant_id = d.tenant_id AND w.id = d.webhook_id
         RETURNING d.tenant_id, d.id, d.webhook_id, d.event_id, d.event_type, d.payload,
                   d.event_created_at, d.actor, d.attempts, w.url,
                   (w.enabled AND w.deleted_at IS NULL) AS live, w.secret,
                   CASE WHEN w.previous_secret_expires_at > now() THEN w.previous_secret END
                       AS previous_secret",
    )
    .bind(tenant)
    .bind(options.batch)
    .bind(options.lease.as_secs_f64())
    .fetch_all(tx.conn())
    .await?;
    tx.commit().await?;
    Ok(claimed)
}

/// One round: every tenant with due deliveries, up to `options.batch` of each per lane,
/// `options.lanes` batches in flight at once (while one lane waits on receivers, another
/// claims or records), `options.concurrency` attempts in flight across them. What the
/// dispatcher function calls; call again while it attempts anything.
pub async fn run_once(
    db: &Database,
    egress: &Egress,
    options: &Options,
) -> Result<Round, sqlx::Error> {
    let mut tx = db.begin_unscoped().await?;
    let tenants: Vec<Uuid> =
        sqlx::query_scalar("SELECT tenant_id FROM app.tenants_with_due_webhook_deliveries($1)")
            .bind(options.tenants)
            .fetch_all(tx.conn())
            .await?;
    tx.commit().await?;
    let lanes = options.lanes.max(1);
    let permits = Arc::new(Semaphore::new(options.concurrency.max(1)));
    let batches = tenants
        .into_iter()
        .flat_map(|tenant| std::iter::repeat_n(tenant, lanes))
        .map(|tenant| batch(db, egress, options, tenant, Arc::clone(&permits)));
    let mut round = Round::default();
    let mut done = futures_util::stream::iter(batches).buffer_unordered(lanes);
    while let Some(batch) = done.next().await {
        let batch = batch?;
        round.attempted += batch.attempted;
        round.cancelled += batch.cancelled;
    }
    Ok(round)
}

/// One batch of one tenant: claim, send, record.
async fn batch(
    db: &Database,
    egress: &Egress,
    options: &Options,
    tenant: Uuid,
    permits: Arc<Semaphore>,
) -> Result<Round, sqlx::Error> {
    let mut round = Round::default();
    let (live, gone): (Vec<_>, Vec<_>) = claim(db, tenant, options)
        .await?
        .into_iter()
        .partition(|d| d.live);
    if !gone.is_empty() {
        let ids: Vec<Uuid> = gone.iter().map(|d| d.id).collect();
        record::cancel(db, tenant, &ids).await?;
        round.cancelled += ids.len();
    }
    round.attempted += live.len();

    let mut tasks = tokio::task::JoinSet::new();
    for delivery in live {
        let permit = Arc::clone(&permits)
            .acquire_owned()
            .await
            .expect("never closed");
        let egress = egress.clone();
        tasks.spawn(async move {
            let _permit = permit;
            let attempt = deliver::send(&egress, &delivery).await;
            (delivery, attempt)
        });
    }
    let mut done = Vec::with_capacity(tasks.len());
    while let Some(finished) = tasks.join_next().await {
        match finished {
            Ok(pair) => done.push(pair),
            Err(e) => tracing::error!(error = %e, "a webhook attempt panicked"),
        }
    }
    if let Err(e) = record::record_all(db, tenant, &done, options).await {
        // The leases run out and the deliveries are tried again: repeated, not lost.
        tracing::error!(error = %e, %tenant, "recording webhook attempts failed");
    }
    Ok(round)
}

/// When the next pending delivery is due (now or in the past when one is waiting).
pub async fn next_due(db: &Database) -> Result<Option<time::OffsetDateTime>, sqlx::Error> {
    let mut tx = db.begin_unscoped().await?;
    let due = sqlx::query_scalar("SELECT app.next_webhook_delivery_at()")
        .fetch_one(tx.conn())
        .await?;
    tx.commit().await?;
    Ok(due)
}

/// Delivers for as long as the process lives (herald-local): a round whenever the outbox
/// trigger notifies, whenever the next retry falls due, and at least every
/// `options.poll` as a safety net against a missed notification.
pub async fn run(db: Database, egress: Egress, options: Options) {
    let mut listener = None;
    loop {
        if listener.is_none() {
            match db.listen(CHANNEL).await {
                Ok(l) => listener = Some(l),
                Err(e) => tracing::warn!(error = %e, "LISTEN failed; polling"),
            }
        }
        loop {
            match run_once(&db, &egress, &options).await {
                Ok(round) if round.attempted + round.cancelled > 0 => continue,
                Ok(_) => break,
                Err(e) => {
                    tracing::error!(error = %e, "webhook delivery round failed");
                    break;
                }
            }
        }
        let wait = match next_due(&db).await {
            Ok(Some(at)) => {
                let until = at - time::OffsetDateTime::now_utc();
                Duration::try_from(until)
                    .unwrap_or(Duration::ZERO)
                    .min(options.poll)
            }
            _ => options.poll,
        };
        // A short floor keeps a stuck row (a lease in the past that cannot be claimed)
        // from spinning the loop.
        let wait = wait.max(Duration::from_millis(10));
        match listener.as_mut() {
            Some(l) => {
                if let Ok(Err(e)) = tokio::time::timeout(wait, l.recv()).await {
                    tracing::warn!(error = %e, "LISTEN connection lost");
                    listener = None;
                }
            }
            None => tokio::time::sleep(wait).await,
        }
    }
}
