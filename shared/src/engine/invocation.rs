//! One scheduler or sender invocation as the Lambda functions run it: a time budget, a
//! logging span, and one EMF record, as [`crate::App::serve`] writes per HTTP request.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tracing::Instrument;

use crate::db::Database;
use crate::http::Problem;
use crate::metrics;

use super::scheduler;
use super::sender::Sender;

/// How long one sender invocation works before leaving the rest to the next: well inside
/// Lambda's 15-minute limit, so a batch in flight is recorded before the function is cut off.
pub const SENDER_BUDGET: Duration = Duration::from_secs(10 * 60);

async fn measured<T: serde::Serialize>(
    function: &'static str,
    request_id: &str,
    work: impl Future<Output = Result<T, Problem>>,
) -> Result<Value, Problem> {
    let started = Instant::now();
    let cold_start = metrics::cold_start();
    let span = tracing::info_span!("invocation", request_id = %request_id, function);
    let (result, invocation) = metrics::measure(work.instrument(span.clone())).await;
    let status = match &result {
        Ok(_) => 200,
        Err(p) => p.status().as_u16(),
    };
    span.in_scope(|| {
        tracing::info!(
            status,
            latency_ms = started.elapsed().as_secs_f64() * 1000.0,
            db_queries = invocation.db_queries,
            "invocation finished"
        )
    });
    metrics::Record {
        function,
        route: "invoke",
        request_id,
        status,
        latency: started.elapsed(),
        cold_start,
        invocation: &invocation,
    }
    .emit();
    result.map(|v| json!(v))
}

/// The `scheduler` function's handler body.
pub async fn schedule(db: &Database, request_id: &str) -> Result<Value, Problem> {
    measured("scheduler", request_id, async {
        let started = scheduler::run_once(db).await?;
        Ok(json!({ "started": started }))
    })
    .await
}

/// The `sender` function's handler body.
pub async fn send(sender: &Sender, request_id: &str) -> Result<Value, Problem> {
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
