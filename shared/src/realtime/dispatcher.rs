//! The dispatcher: drains the event outbox to WebSocket subscribers.
//!
//! Tenants with pending events come from `app.tenants_with_pending_events` (a definer
//! function returning ids only); each tenant is then drained under its own context, in
//! `seq` (commit) order, one batch per transaction:
//!
//! 1. lock the tenant's outbox (an advisory lock, so two dispatchers never interleave one
//!    tenant's events) and read up to `batch` pending events;
//! 2. post every event to every connection that wants it, connections concurrently (at
//!    most `concurrency` posts in flight), each connection's events in order;
//! 3. prune connections that answered 410 Gone, stamp the batch `dispatched_at`, commit.
//!
//! A crash before the commit rolls the stamps back, so the batch in flight is sent again
//! (at-least-once; subscribers drop duplicates by event id) and nothing is lost.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::Value;
use time::OffsetDateTime;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use uuid::Uuid;

use super::connections::{self, Target};
use super::frames::EventFrame;
use super::management::{Connections, Delivery};
use crate::db::{Database, TenantTx};
use crate::metrics;

#[derive(Clone, Debug)]
pub struct Options {
    /// Events per transaction: what a crash may re-send.
    pub batch: i64,
    /// Posts in flight at once.
    pub concurrency: usize,
    /// Fault injection for tests: while positive, each batch stops after posting and
    /// before stamping (as if the process died there), decrementing it.
    pub crash_after_posting: Arc<AtomicUsize>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            batch: 100,
            concurrency: 64,
            crash_after_posting: Arc::new(AtomicUsize::new(0)),
        }
    }
}

/// What one run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Drained {
    pub events: usize,
    pub posts: usize,
    pub pruned: usize,
    pub failed: usize,
}

impl Drained {
    fn add(&mut self, other: Drained) {
        self.events += other.events;
        self.posts += other.posts;
        self.pruned += other.pruned;
        self.failed += other.failed;
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error("stopped between posting and marking (fault injection)")]
    Crashed,
}

#[derive(sqlx::FromRow)]
struct Pending {
    seq: i64,
    id: Uuid,
    #[sqlx(rename = "type")]
    kind: String,
    payload: Value,
    created_at: OffsetDateTime,
    actor: Option<Value>,
}

#[derive(Clone)]
pub struct Dispatcher {
    db: Database,
    connections: Connections,
    options: Options,
}

impl Dispatcher {
    pub fn new(db: Database, connections: Connections, options: Options) -> Dispatcher {
        Dispatcher {
            db,
            connections,
            options,
        }
    }

    /// Drains every tenant's pending events; one EMF record for the run.
    pub async fn run(&self) -> Result<Drained, DispatchError> {
        // Boxed: nested in the metrics wrapper, the drain future's type is deep enough to
        // overflow rustc's layout query depth in the dispatcher binary.
        let result =
            metrics::instrument("dispatcher", "drain", "", Box::pin(self.drain_all())).await;
        match &result {
            Ok(d) if d.events > 0 => tracing::info!(
                events = d.events,
                posts = d.posts,
                pruned = d.pruned,
                failed = d.failed,
                "outbox drained"
            ),
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "dispatch failed"),
        }
        result
    }

    async fn drain_all(&self) -> Result<Drained, DispatchError> {
        let mut tx = self.db.begin_unscoped().await?;
        let tenants: Vec<Uuid> = sqlx::query_scalar("SELECT app.tenants_with_pending_events()")
            .fetch_all(tx.conn())
            .await?;
        tx.commit().await?;
        let mut total = Drained::default();
        let mut first_error = None;
        for tenant in tenants {
            // One tenant's trouble must not hold up the others.
            match self.drain(tenant).await {
                Ok(d) => total.add(d),
                Err(e) => {
                    tracing::error!(%tenant, error = %e, "draining a tenant failed");
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(total),
        }
    }

    /// Drains one tenant, batch by batch.
    pub async fn drain(&self, tenant: Uuid) -> Result<Drained, DispatchError> {
        let mut total = Drained::default();
        loop {
            let mut tx = self.db.begin_as(tenant, "dispatcher").await?;
            sqlx::query(
                "SELECT pg_advisory_xact_lock(hashtextextended('herald_outbox:' || $1::text, 0))",
            )
            .bind(tenant)
            .execute(tx.conn())
            .await?;
            total.add(self.replay(tenant, &mut tx).await?);
            let batch = self.drain_batch(tenant, &mut tx).await?;
            tx.commit().await?;
            total.add(batch);
            if (batch.events as i64) < self.options.batch {
                return Ok(total);
            }
        }
    }

    /// Posts the next batch of pending events to every connection that takes live ones,
    /// prunes the gone, and stamps the batch.
    async fn drain_batch(&self, tenant: Uuid, tx: &mut TenantTx) -> Result<Drained, DispatchError> {
        let events = self.pending(tx, None).await?;
        if events.is_empty() {
            return Ok(Drained::default());
        }
        let targets = connections::targets(tx.conn()).await?;
        let outcome = self.post(tenant, &events, targets).await;
        let pruned = connections::delete_all(tx.conn(), &outcome.gone).await? as usize;
        if self
            .options
            .crash_after_posting
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(DispatchError::Crashed);
        }
        let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
        sqlx::query(
            "UPDATE outbox_events SET dispatched_at = now() WHERE tenant_id = $1 AND seq = ANY($2)",
        )
        .bind(tenant)
        .bind(&seqs)
        .execute(tx.conn())
        .await?;
        Ok(Drained {
            events: events.len(),
            posts: outcome.posts,
            pruned,
            failed: outcome.failed,
        })
    }

    /// A batch of events in `seq` order: not yet dispatched, or, for a replay, dispatched
    /// and after `replay_after`.
    async fn pending(
        &self,
        tx: &mut TenantTx,
        replay_after: Option<i64>,
    ) -> Result<Vec<Pending>, sqlx::Error> {
        let sql = match replay_after {
            None => {
                "SELECT seq, id, type, payload, created_at, actor FROM outbox_events
                 WHERE tenant_id = $1 AND dispatched_at IS NULL AND $3::bigint IS NULL
                 ORDER BY seq LIMIT $2"
            }
            Some(_) => {
                "SELECT seq, id, type, payload, created_at, actor FROM outbox_events
                 WHERE tenant_id = $1 AND dispatched_at IS NOT NULL AND seq > $3
                 ORDER BY seq LIMIT $2"
            }
        };
        sqlx::query_as(sql)
            .bind(tx.tenant())
            .bind(self.options.batch)
            .bind(replay_after)
            .fetch_all(tx.conn())
            .await
    }

    /// Posts each connection that asked for a replay (`?since=`) the dispatched events
    /// after it, in order, then lets it take live events. It runs under the tenant's outbox
    /// lock and such a connection takes no live events until then, so each event reaches it
    /// once: by replay if dispatched before, live if after.
    async fn replay(&self, tenant: Uuid, tx: &mut TenantTx) -> Result<Drained, DispatchError> {
        let mut done = Drained::default();
        for waiting in connections::replays(tx.conn()).await? {
            let mut after = waiting.replay_after;
            let gone = loop {
                let events = self.pending(tx, Some(after)).await?;
                let Some(last) = events.last().map(|e| e.seq) else {
                    break false;
                };
                let posted = self.post(tenant, &events, vec![waiting.target()]).await;
                done.posts += posted.posts;
                done.failed += posted.failed;
                if !posted.gone.is_empty() {
                    break true;
                }
                after = last;
            };
            let id = &waiting.connection_id;
            if !gone {
                connections::replayed(tx.conn(), id).await?;
            } else if OffsetDateTime::now_utc() - waiting.connected_at < HANDSHAKE_GRACE {
                // API Gateway refuses posts until the handshake ends: try again next run.
                connections::replay_from(tx.conn(), id, after).await?;
            } else {
                done.pruned +=
                    connections::delete_all(tx.conn(), std::slice::from_ref(id)).await? as usize;
            }
        }
        Ok(done)
    }

    /// Posts a batch: connections concurrently, each connection's events in order.
    async fn post(&self, tenant: Uuid, events: &[Pending], targets: Vec<Target>) -> Posted {
        let frames = Arc::new(frames(tenant, events));
        let permits = Arc::new(Semaphore::new(self.options.concurrency.max(1)));
        let mut tasks = JoinSet::new();
        for target in targets {
            let wanted: Vec<usize> = (0..frames.len())
                .filter(|&i| target.wants(&frames[i].0))
                .collect();
            if wanted.is_empty() {
                continue;
            }
            let (frames, permits) = (Arc::clone(&frames), Arc::clone(&permits));
            let client = self.connections.clone();
            tasks.spawn(async move {
                let mut posted = Posted::default();
                for i in wanted {
                    let Ok(_permit) = permits.acquire().await else {
                        break;
                    };
                    posted.posts += 1;
                    match client.post(&target.connection_id, &frames[i].1).await {
                        Delivery::Sent => {}
                        Delivery::Gone => {
                            posted.gone.push(target.connection_id);
                            break;
                        }
                        // Given up after the retries: the other subscribers still get the
                        // batch; this one misses the event rather than blocking the outbox.
                        Delivery::Failed => posted.failed += 1,
                    }
                }
                posted
            });
        }
        let mut all = Posted::default();
        while let Some(done) = tasks.join_next().await {
            if let Ok(p) = done {
                all.posts += p.posts;
                all.failed += p.failed;
                all.gone.extend(p.gone);
            }
        }
        all
    }
}

/// Each event's type and its frame, serialised once for every connection.
fn frames(tenant: Uuid, events: &[Pending]) -> Vec<(String, Vec<u8>)> {
    events
        .iter()
        .map(|e| {
            let frame = EventFrame {
                id: e.id,
                kind: &e.kind,
                tenant_id: tenant,
                timestamp: e.created_at,
                actor: e.actor.as_ref(),
                payload: &e.payload,
            };
            let bytes = serde_json::to_vec(&frame).unwrap_or_default();
            (e.kind.clone(), bytes)
        })
        .collect()
}

#[derive(Default)]
struct Posted {
    posts: usize,
    failed: usize,
    gone: Vec<String>,
}

/// How long after `$connect` a connection that answers 410 is taken to be still opening
/// rather than gone.
const HANDSHAKE_GRACE: Duration = Duration::from_secs(10);

/// How long `herald-local`'s loop waits for a notification before draining anyway.
pub const SAFETY_POLL: Duration = Duration::from_secs(5);

/// The dispatcher function's loop: each invocation drains the outbox to WebSocket
/// subscribers, then makes the webhook deliveries that are due, rounds at a time, until none
/// is due or [`WEBHOOK_BUDGET`] is spent (the function's timeout leaves room for one more
/// round of 15-second attempts). What is left waits for the next kick or the schedule.
pub async fn run_lambda(
    dispatcher: Dispatcher,
    egress: crate::net::egress::Egress,
) -> Result<(), lambda_http::lambda_runtime::Error> {
    use crate::webhooks::delivery::{self, worker};
    use lambda_http::lambda_runtime::{self, LambdaEvent};
    let options = delivery::Options::default();
    let (dispatcher, egress, options) = (&dispatcher, &egress, &options);
    lambda_runtime::run(lambda_runtime::service_fn(
        move |_: LambdaEvent<serde_json::Value>| async move {
            let drained = dispatcher
                .run()
                .await
                .map_err(|e| Box::new(e) as lambda_http::lambda_runtime::Error)?;
            let started = std::time::Instant::now();
            let mut attempted = 0;
            while started.elapsed() < WEBHOOK_BUDGET {
                let round = metrics::instrument(
                    "dispatcher",
                    "webhooks",
                    "",
                    Box::pin(worker::run_once(&dispatcher.db, egress, options)),
                )
                .await?;
                attempted += round.attempted;
                if round.attempted == 0 {
                    break;
                }
            }
            Ok::<_, lambda_http::lambda_runtime::Error>(serde_json::json!({
                "events": drained.events,
                "posts": drained.posts,
                "pruned": drained.pruned,
                "failed": drained.failed,
                "webhookAttempts": attempted,
            }))
        },
    ))
    .await
}

/// How long one dispatcher invocation keeps delivering webhooks.
pub const WEBHOOK_BUDGET: Duration = Duration::from_secs(30);
