//! Per-invocation measurements and their CloudWatch Embedded Metric Format record.
//!
//! Database time and query counts come from the `sqlx::query` events that sqlx emits for
//! every statement, collected by [`QueryLayer`] into the invocation's task-local
//! [`Invocation`]. No query needs wrapping, so none can be forgotten.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::json;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::Context;

/// What one invocation did, filled in while it runs.
#[derive(Debug, Default, Clone)]
pub struct Invocation {
    pub db_time: Duration,
    pub db_queries: u32,
    pub slow_queries: u32,
    pub tenant_id: Option<uuid::Uuid>,
}

tokio::task_local! {
    static CURRENT: RefCell<Invocation>;
}

/// Runs `fut` with a fresh [`Invocation`] and returns what it recorded.
pub async fn measure<F: Future>(fut: F) -> (F::Output, Invocation) {
    CURRENT
        .scope(RefCell::new(Invocation::default()), async {
            let out = fut.await;
            (out, CURRENT.with(|c| c.borrow().clone()))
        })
        .await
}

fn with_current(f: impl FnOnce(&mut Invocation)) {
    let _ = CURRENT.try_with(|c| f(&mut c.borrow_mut()));
}

/// Notes the tenant the invocation works for (a property of its metric record).
pub fn note_tenant(tenant: uuid::Uuid) {
    with_current(|inv| inv.tenant_id = Some(tenant));
}

/// Counts statements and their time from sqlx's `sqlx::query` events.
pub struct QueryLayer;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for QueryLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() != "sqlx::query" {
            return;
        }
        let mut visit = QueryFields::default();
        event.record(&mut visit);
        if let Some(secs) = visit.elapsed_secs {
            with_current(|inv| {
                inv.db_queries += 1;
                inv.db_time += Duration::from_secs_f64(secs.max(0.0));
                if visit.slow {
                    inv.slow_queries += 1;
                }
            });
        }
    }
}

#[derive(Default)]
struct QueryFields {
    elapsed_secs: Option<f64>,
    slow: bool,
}

impl Visit for QueryFields {
    fn record_f64(&mut self, field: &Field, value: f64) {
        if field.name() == "elapsed_secs" {
            self.elapsed_secs = Some(value);
        }
    }
    fn record_debug(&mut self, field: &Field, _value: &dyn std::fmt::Debug) {
        // sqlx adds `slow_threshold` only to statements over the threshold.
        if field.name() == "slow_threshold" {
            self.slow = true;
        }
    }
}

static WARM: AtomicBool = AtomicBool::new(false);

/// True for the first invocation a process serves.
pub fn cold_start() -> bool {
    !WARM.swap(true, Ordering::Relaxed)
}

/// One invocation's outcome, as written to the EMF record.
pub struct Record<'a> {
    pub function: &'a str,
    pub route: &'a str,
    pub request_id: &'a str,
    pub status: u16,
    pub latency: Duration,
    pub cold_start: bool,
    pub invocation: &'a Invocation,
}

impl Record<'_> {
    /// The EMF document: metrics under namespace `Herald`, dimensions function and route
    /// (low cardinality); request and tenant ids are properties, searchable in Logs
    /// Insights without multiplying metric series.
    pub fn to_emf(&self, timestamp_ms: u128) -> serde_json::Value {
        let inv = self.invocation;
        let class = self.status / 100;
        json!({
            "_aws": {
                "Timestamp": timestamp_ms as u64,
                "CloudWatchMetrics": [{
                    "Namespace": "Herald",
                    "Dimensions": [["function", "route"]],
                    "Metrics": [
                        {"Name": "Latency", "Unit": "Milliseconds"},
                        {"Name": "DbTime", "Unit": "Milliseconds"},
                        {"Name": "DbQueries", "Unit": "Count"},
                        {"Name": "SlowQueries", "Unit": "Count"},
                        {"Name": "ColdStart", "Unit": "Count"},
                        {"Name": "Status2xx", "Unit": "Count"},
                        {"Name": "Status4xx", "Unit": "Count"},
                        {"Name": "Status5xx", "Unit": "Count"}
                    ]
                }]
            },
            "function": self.function,
            "route": self.route,
            "Latency": self.latency.as_secs_f64() * 1000.0,
            "DbTime": inv.db_time.as_secs_f64() * 1000.0,
            "DbQueries": inv.db_queries,
            "SlowQueries": inv.slow_queries,
            "ColdStart": u8::from(self.cold_start),
            "Status2xx": u8::from(class == 2),
            "Status4xx": u8::from(class == 4),
            "Status5xx": u8::from(class == 5),
            "statusCode": self.status,
            "requestId": self.request_id,
            "tenantId": inv.tenant_id,
        })
    }

    /// Writes the record as one stdout line, where the Lambda agent picks EMF up.
    pub fn emit(&self) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        println!("{}", self.to_emf(now));
    }
}
