//! Logging: JSON lines on stdout (CloudWatch Logs in AWS), each carrying the request id and
//! tenant id of the invocation span it was written in.

use tracing_subscriber::filter::{EnvFilter, Targets};
use tracing_subscriber::prelude::*;

/// Installs the global subscriber. Safe to call more than once (tests do): later calls are
/// no-ops.
pub fn init() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx::query=warn,hyper=warn,h2=warn"));
    let logs = tracing_subscriber::fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(true)
        .with_filter(filter);
    // sqlx reports every statement at DEBUG; the query counter needs those even though the
    // log lines stay at WARN.
    let queries = crate::metrics::QueryLayer
        .with_filter(Targets::new().with_target("sqlx::query", tracing::Level::DEBUG));
    let _ = tracing_subscriber::registry()
        .with(logs)
        .with(queries)
        .try_init();
}
