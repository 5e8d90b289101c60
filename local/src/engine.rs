//! The scheduler and the sender, running continuously beside the HTTP port, as EventBridge
//! and asynchronous invocations run them in AWS. The sender wakes on `NOTIFY herald_sender`
//! (sent in the transaction that queues work) and polls slowly as a safety net; the
//! scheduler polls.

use std::sync::Arc;
use std::time::Duration;

use herald::db::Database;
use herald::engine::sender::Sender;
use herald::engine::{WAKE_CHANNEL, scheduler};

/// How long one pass of the local sender works before looking for notifications again.
const PASS: Duration = Duration::from_secs(30);

/// Runs the sender until the task is dropped.
pub async fn run_sender(db: Database, sender: Arc<Sender>, poll: Duration) {
    let mut listener = match db.listen(WAKE_CHANNEL).await {
        Ok(l) => Some(l),
        Err(e) => {
            tracing::warn!(error = %e, "sender cannot LISTEN; polling only");
            None
        }
    };
    loop {
        if let Err(err) = sender.run_once(PASS).await {
            tracing::error!(error = %err.report(), "sender pass failed");
        }
        match listener.as_mut() {
            Some(l) => {
                // A notification or the poll, whichever comes first; notifications that
                // arrived during the pass are drained by the next recv.
                let _ = tokio::time::timeout(poll, l.recv()).await;
            }
            None => tokio::time::sleep(poll).await,
        }
    }
}

/// Runs the scheduler every `every` until the task is dropped.
/// It also purges expired idempotency keys and events older than `retention`.
pub async fn run_scheduler(db: Database, every: Duration, retention: Duration) {
    loop {
        match scheduler::run_once(&db).await {
            Ok(started) if !started.is_empty() => {
                tracing::info!(count = started.len(), "scheduler started campaigns")
            }
            Ok(_) => {}
            Err(err) => tracing::error!(error = %err.report(), "scheduler pass failed"),
        }
        if let Err(e) = herald::idempotency::purge(&db).await {
            tracing::warn!(error = %e, "idempotency key purge failed");
        }
        let before = time::OffsetDateTime::now_utc() - retention;
        if let Err(e) = herald::events::purge(&db, before).await {
            tracing::warn!(error = %e, "event purge failed");
        }
        tokio::time::sleep(every).await;
    }
}
