//! One scheduler or sender invocation as the Lambda functions run it: a time budget, and
//! [`metrics::instrument`]'s span and EMF record, as for every other invocation.

use std::time::Duration;

use serde_json::{Value, json};

use crate::db::Database;
use crate::db::StoreError;
use crate::metrics;

use super::scheduler;
use super::sender::Sender;

/// How long one sender invocation works before leaving the rest to the next: well inside
/// Lambda's 15-minute limit, so a batch in flight is recorded before the function is cut off.
pub const SENDER_BUDGET: Duration = Duration::from_secs(10 * 60);

async fn measured<T: serde::Serialize>(
    function: &'static str,
    request_id: &str,
    work: impl Future<Output = Result<T, StoreError>>,
) -> Result<Value, StoreError> {
    let result = metrics::instrument(function, "invoke", request_id, Box::pin(work)).await;
    result.map(|v| json!(v))
}

/// The `scheduler` function's handler body.
/// Besides starting campaigns, it purges expired idempotency keys and the events older than
/// `retention`.
pub async fn schedule(
    db: &Database,
    request_id: &str,
    retention: std::time::Duration,
) -> Result<Value, StoreError> {
    measured("scheduler", request_id, async {
        let started = scheduler::run_once(db).await?;
        let purged = crate::idempotency::store::purge(db).await?;
        let events = crate::events::purge(db, time::OffsetDateTime::now_utc() - retention).await?;
        Ok(json!({
            "started": started,
            "purgedIdempotencyKeys": purged,
            "purgedEvents": events,
        }))
    })
    .await
}

/// The `sender` function's handler body.
pub async fn send(sender: &Sender, request_id: &str) -> Result<Value, StoreError> {
    measured("sender", request_id, async {
        let report = sender.run_once(SENDER_BUDGET).await?;
        Ok(json!({
            "queued": report.queued,
            "claimed": report.claimed,
            "sent": report.sent,
            "failed": report.failed,
            "retried": report.retried,
        }))
    })
    .await
}
