//! Per-invocation measurements and their CloudWatch Embedded Metric Format record.
//!
//! # Instrumenting an invocation
//!
//! Every function wraps each invocation in [`instrument`], HTTP (through `App::serve`) and
//! otherwise alike:
//!
//! ```ignore
//! // A WebSocket handler, the dispatcher, the scheduler, the sender:
//! let out = herald::metrics::instrument("dispatcher", "drain", &lambda_ctx.request_id, async {
//!     drain(&db).await // any output implementing `Outcome`: Result<_, _>, an HTTP response, ()
//! })
//! .await;
//! ```
//!
//! `instrument` runs the future in the invocation's task-local [`Invocation`] (request id,
//! function, route, tenant id: every log line written inside carries them, see
//! [`crate::telemetry`]), measures it, logs `invocation finished`, and writes one EMF
//! line: Latency, DbTime, DbQueries, SlowQueries, ColdStart, MaxRss, Errors, ClientErrors,
//! ServerErrors under namespace `Herald`, dimensions function and route (keep both low
//! cardinality: a route key, a job name, never an id); request id, tenant id and status as
//! properties. When the invocation entered a tenant through [`crate::db::Database`], its
//! figures also go into that database's per-minute rollups (see [`crate::rollup`]), which
//! `GET /api/performance/stats` reads across every instance.
//!
//! Database time and query counts come from the `sqlx::query` events that sqlx emits for
//! every statement, collected by [`QueryLayer`] into the invocation's task-local
//! [`Invocation`]. No query needs wrapping, so none can be forgotten. Work spawned onto
//! other tasks is not counted: it runs outside the invocation's task-local scope.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use serde_json::json;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::Context;

use crate::observer::Observer;
use crate::ratelimit::RateState;
pub use crate::rollup::{Class, SlowQuery};

/// Slow statements kept per invocation; more are counted but not kept.
const SLOW_KEPT: usize = 5;

/// What one invocation did, filled in while it runs.
#[derive(Default, Clone)]
pub struct Invocation {
    pub db_time: Duration,
    pub db_queries: u32,
    pub slow_queries: u32,
    pub tenant_id: Option<uuid::Uuid>,
    /// API Gateway's (or the Lambda context's) request id.
    pub request_id: String,
    /// The function and route [`instrument`] was given, for log lines.
    pub function: String,
    pub route: String,
    /// The first few slow statements, literals stripped.
    pub slow: Vec<SlowQuery>,
    /// Where the invocation's figures are aggregated, once it has entered a tenant.
    pub observer: Option<Arc<Observer>>,
    /// The tenant's rate-limit standing after this request, for the `RateLimit-*` headers.
    pub rate: Option<RateState>,
}

impl std::fmt::Debug for Invocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Invocation")
            .field("db_time", &self.db_time)
            .field("db_queries", &self.db_queries)
            .field("slow_queries", &self.slow_queries)
            .field("tenant_id", &self.tenant_id)
            .field("request_id", &self.request_id)
            .field("slow", &self.slow)
            .finish_non_exhaustive()
    }
}

tokio::task_local! {
    static CURRENT: RefCell<Invocation>;
}

/// Runs `fut` with a fresh [`Invocation`] and returns what it recorded.
pub async fn measure<F: Future>(fut: F) -> (F::Output, Invocation) {
    measure_as(Invocation::default(), fut).await
}

async fn measure_as<F: Future>(start: Invocation, fut: F) -> (F::Output, Invocation) {
    CURRENT
        .scope(RefCell::new(start), async {
            let out = fut.await;
            (out, CURRENT.with(|c| std::mem::take(&mut *c.borrow_mut())))
        })
        .await
}

fn with_current<T>(f: impl FnOnce(&mut Invocation) -> T) -> Option<T> {
    CURRENT.try_with(|c| f(&mut c.borrow_mut())).ok()
}

/// What a log line says of the invocation it was written in.
pub(crate) struct InvocationContext<'a> {
    pub request_id: &'a str,
    pub function: &'a str,
    pub route: &'a str,
    pub tenant_id: Option<uuid::Uuid>,
}

/// Calls `f` with the current invocation's context; `None` outside an invocation (or inside
/// [`measure`], which has no request id).
pub(crate) fn with_invocation_context<T>(f: impl FnOnce(Option<InvocationContext<'_>>) -> T) -> T {
    let mut f = Some(f);
    let inside = CURRENT.try_with(|c| {
        // A line written while the record is being updated (none is today) goes without.
        let inv = c.try_borrow().ok();
        let ctx = inv
            .as_deref()
            .filter(|inv| !inv.request_id.is_empty())
            .map(|inv| InvocationContext {
                request_id: &inv.request_id,
                function: &inv.function,
                route: &inv.route,
                tenant_id: inv.tenant_id,
            });
        (f.take().expect("called once"))(ctx)
    });
    match inside {
        Ok(out) => out,
        Err(_) => (f.take().expect("not called inside"))(None),
    }
}

/// Notes the tenant the invocation works for (a property of its metric record).
pub fn note_tenant(tenant: uuid::Uuid) {
    with_current(|inv| inv.tenant_id = Some(tenant));
}

/// Notes the tenant and where its figures are aggregated (done by `Database::begin_tenant`).
pub fn enter_tenant(tenant: uuid::Uuid, observer: &Arc<Observer>) {
    with_current(|inv| {
        inv.tenant_id = Some(tenant);
        inv.observer = Some(Arc::clone(observer));
    });
}

/// The current invocation's request id (empty outside one).
pub fn request_id() -> String {
    with_current(|inv| inv.request_id.clone()).unwrap_or_default()
}

/// Records the tenant's rate-limit standing, which `App::serve` turns into headers.
pub fn note_rate(rate: RateState) {
    with_current(|inv| inv.rate = Some(rate));
}

/// The rate-limit standing recorded so far in this invocation.
pub fn rate() -> Option<RateState> {
    with_current(|inv| inv.rate).flatten()
}

/// What [`instrument`] needs to know about an invocation's output.
pub trait Outcome {
    fn class(&self) -> Class;
    /// The HTTP status, for HTTP invocations.
    fn status(&self) -> Option<u16> {
        None
    }
}

impl<B> Outcome for http::Response<B> {
    fn class(&self) -> Class {
        class_of(self.status().as_u16())
    }
    fn status(&self) -> Option<u16> {
        Some(self.status().as_u16())
    }
}

impl<T, E> Outcome for Result<T, E> {
    fn class(&self) -> Class {
        match self {
            Ok(_) => Class::Ok,
            Err(_) => Class::ServerError,
        }
    }
}

impl Outcome for () {
    fn class(&self) -> Class {
        Class::Ok
    }
}

pub fn class_of(status: u16) -> Class {
    match status / 100 {
        4 => Class::ClientError,
        5 => Class::ServerError,
        _ => Class::Ok,
    }
}

/// Runs one invocation of `function` for `route` (e.g. `GET /api/contacts`, `$connect`,
/// `drain`): logging span, measurements, one EMF line, rollups. `request_id` is API
/// Gateway's or the Lambda context's; empty means a fresh one is made up.
pub async fn instrument<F>(function: &str, route: &str, request_id: &str, fut: F) -> F::Output
where
    F: Future,
    F::Output: Outcome,
{
    instrument_with(None, function, route, request_id, fut).await
}

/// [`instrument`] with the function's observer known up front (`App::serve`), so that its
/// settings apply even to invocations that never enter a tenant.
pub async fn instrument_with<F>(
    observer: Option<&Arc<Observer>>,
    function: &str,
    route: &str,
    request_id: &str,
    fut: F,
) -> F::Output
where
    F: Future,
    F::Output: Outcome,
{
    // On the heap from here on: handed down by value, each level would keep a copy of the
    // request's state.
    let fut = Box::pin(fut);
    let started = Instant::now();
    let wall = SystemTime::now();
    let cold_start = cold_start();
    let request_id = if request_id.is_empty() {
        uuid::Uuid::new_v4().simple().to_string()
    } else {
        request_id.to_owned()
    };
    let start = Invocation {
        request_id,
        function: function.to_owned(),
        route: route.to_owned(),
        observer: observer.cloned(),
        ..Invocation::default()
    };
    let ((output, latency), invocation) = measure_as(start, async {
        let output = fut.await;
        let latency = started.elapsed();
        // Inside the invocation, so that the line carries its request id.
        tracing::info!(
            status = output.status(),
            latency_ms = latency.as_secs_f64() * 1000.0,
            db_queries = with_current(|inv| inv.db_queries).unwrap_or_default(),
            "invocation finished"
        );
        (output, latency)
    })
    .await;

    let finished = Finished {
        function,
        route,
        status: output.status(),
        class: output.class(),
        latency,
        wall,
        cold_start,
    };
    finished.report(&invocation);
    output
}

/// How an invocation ended, for its EMF line and its tenant's rollup.
struct Finished<'a> {
    function: &'a str,
    route: &'a str,
    status: Option<u16>,
    class: Class,
    latency: Duration,
    wall: SystemTime,
    cold_start: bool,
}

impl Finished<'_> {
    /// Writes the EMF line (unless the observer is off) and hands the rollup its sample.
    fn report(&self, invocation: &Invocation) {
        let observer = invocation.observer.as_ref();
        if observer.is_none_or(|o| o.enabled()) {
            Record {
                function: self.function,
                route: self.route,
                request_id: &invocation.request_id,
                status: self.status,
                class: self.class,
                latency: self.latency,
                cold_start: self.cold_start,
                max_rss_kb: max_rss_kb(),
                invocation,
            }
            .emit();
        }
        if let (Some(observer), Some(tenant)) = (observer, invocation.tenant_id) {
            observer.record(rollup_sample(
                tenant,
                self.wall,
                self.function,
                self.route,
                self.class,
                self.latency,
                invocation,
            ));
        }
    }
}

fn rollup_sample(
    tenant: uuid::Uuid,
    at: SystemTime,
    function: &str,
    route: &str,
    class: Class,
    latency: Duration,
    inv: &Invocation,
) -> crate::rollup::Sample {
    crate::rollup::Sample {
        tenant,
        at,
        function: function.to_owned(),
        route: route.to_owned(),
        class,
        latency,
        db_time: inv.db_time,
        queries: inv.db_queries,
        slow_queries: inv.slow_queries,
        slow: inv
            .slow
            .iter()
            .map(|s| (s.clone(), inv.request_id.clone()))
            .collect(),
    }
}

/// Counts statements and their time from sqlx's `sqlx::query` events, and keeps the text
/// of slow ones.
pub struct QueryLayer;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for QueryLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() != "sqlx::query" {
            return;
        }
        // sqlx reports slow statements from a call site of their own, with a
        // `slow_threshold` field: only for those is the text worth copying.
        let slow = event.metadata().fields().field("slow_threshold").is_some();
        let mut visit = QueryFields {
            slow,
            ..QueryFields::default()
        };
        event.record(&mut visit);
        if let Some(secs) = visit.elapsed_secs {
            let duration = Duration::from_secs_f64(secs.max(0.0));
            with_current(|inv| {
                inv.db_queries += 1;
                inv.db_time += duration;
                if visit.slow {
                    inv.slow_queries += 1;
                    if inv.slow.len() < SLOW_KEPT {
                        let sql = if visit.statement.trim().is_empty() {
                            &visit.summary
                        } else {
                            &visit.statement
                        };
                        inv.slow.push(SlowQuery {
                            at: SystemTime::now(),
                            duration,
                            statement: strip_literals(sql),
                        });
                    }
                }
            });
        }
    }
}

#[derive(Default)]
struct QueryFields {
    elapsed_secs: Option<f64>,
    slow: bool,
    summary: String,
    statement: String,
}

impl Visit for QueryFields {
    fn record_f64(&mut self, field: &Field, value: f64) {
        if field.name() == "elapsed_secs" {
            self.elapsed_secs = Some(value);
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        // sqlx sends `summary` (the first words) and, when that is not all of it, the whole
        // statement as `db.statement`.
        if !self.slow {
            return;
        }
        match field.name() {
            "summary" => self.summary = value.to_owned(),
            "db.statement" => self.statement = value.to_owned(),
            _ => {}
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if self.slow && field.name() == "summary" && self.summary.is_empty() {
            self.summary = format!("{value:?}");
        }
    }
}

/// Skips the rest of a string literal whose opening quote was read; `''` is an escaped
/// quote inside it.
fn skip_string(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    while let Some(d) = chars.next() {
        if d == '\'' {
            if chars.peek() == Some(&'\'') {
                chars.next();
            } else {
                break;
            }
        }
    }
}

/// The statement with its literal values replaced by `?`, whitespace collapsed and length
/// bounded: a slow query is shown without the data it carried.
pub fn strip_literals(sql: &str) -> String {
    const MAX: usize = 2000;
    let mut out = String::with_capacity(sql.len().min(MAX));
    let mut chars = sql.chars().peekable();
    let mut prev_word = false; // the previous char continues an identifier
    let mut space = false;
    while let Some(c) = chars.next() {
        if out.len() >= MAX {
            out.push('…');
            break;
        }
        if c.is_whitespace() {
            space = !out.is_empty();
            prev_word = false;
            continue;
        }
        if space {
            out.push(' ');
            space = false;
        }
        match c {
            '\'' => {
                skip_string(&mut chars);
                out.push('?');
                prev_word = false;
            }
            '$' if !prev_word => {
                // A bind parameter: no value in it, keep as is.
                out.push('$');
                while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
                    out.push(d);
                    chars.next();
                }
            }
            d if d.is_ascii_digit() && !prev_word => {
                while chars
                    .next_if(|n| n.is_ascii_digit() || *n == '.' || *n == 'e')
                    .is_some()
                {}
                out.push('?');
            }
            other => {
                out.push(other);
                prev_word = other.is_alphanumeric() || other == '_' || other == '"';
            }
        }
    }
    out
}

static WARM: AtomicBool = AtomicBool::new(false);

/// True for the first invocation a process serves.
pub fn cold_start() -> bool {
    !WARM.swap(true, Ordering::Relaxed)
}

/// The process's peak resident set size in kilobytes (Linux reports `ru_maxrss` in KiB).
pub fn max_rss_kb() -> u64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } == 0 {
        u64::try_from(usage.ru_maxrss).unwrap_or(0)
    } else {
        0
    }
}

/// One invocation's outcome, as written to the EMF record.
pub struct Record<'a> {
    pub function: &'a str,
    pub route: &'a str,
    pub request_id: &'a str,
    /// The HTTP status, for HTTP invocations.
    pub status: Option<u16>,
    pub class: Class,
    pub latency: Duration,
    pub cold_start: bool,
    pub max_rss_kb: u64,
    pub invocation: &'a Invocation,
}

/// The metric declarations of every record: the same for every invocation, so written once.
static DECLARATIONS: std::sync::LazyLock<Box<serde_json::value::RawValue>> =
    std::sync::LazyLock::new(|| {
        serde_json::value::to_raw_value(&json!([{
            "Namespace": "Herald",
            "Dimensions": [["function", "route"]],
            "Metrics": [
                {"Name": "Latency", "Unit": "Milliseconds"},
                {"Name": "DbTime", "Unit": "Milliseconds"},
                {"Name": "DbQueries", "Unit": "Count"},
                {"Name": "SlowQueries", "Unit": "Count"},
                {"Name": "ColdStart", "Unit": "Count"},
                {"Name": "MaxRss", "Unit": "Kilobytes"},
                {"Name": "Errors", "Unit": "Count"},
                {"Name": "ClientErrors", "Unit": "Count"},
                {"Name": "ServerErrors", "Unit": "Count"}
            ]
        }]))
        .expect("a constant JSON document serializes")
    });

/// An EMF document as it is written: serialized straight from the record, without a
/// `serde_json::Value` in between (one is built per invocation).
#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct Emf<'a> {
    #[serde(rename = "_aws")]
    aws: EmfMetadata,
    #[serde(rename = "function")]
    function: &'a str,
    #[serde(rename = "route")]
    route: &'a str,
    latency: f64,
    db_time: f64,
    db_queries: u32,
    slow_queries: u32,
    cold_start: u8,
    max_rss: u64,
    errors: u8,
    client_errors: u8,
    server_errors: u8,
    #[serde(rename = "statusCode")]
    status_code: Option<u16>,
    #[serde(rename = "requestId")]
    request_id: &'a str,
    #[serde(rename = "tenantId")]
    tenant_id: Option<uuid::Uuid>,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct EmfMetadata {
    timestamp: u64,
    cloud_watch_metrics: &'static serde_json::value::RawValue,
}

impl Record<'_> {
    /// The EMF document: metrics under namespace `Herald`, dimensions function and route
    /// (low cardinality); request and tenant ids are properties, searchable in Logs
    /// Insights without multiplying metric series.
    fn document(&self, timestamp_ms: u128) -> Emf<'_> {
        let inv = self.invocation;
        Emf {
            aws: EmfMetadata {
                timestamp: timestamp_ms as u64,
                cloud_watch_metrics: &DECLARATIONS,
            },
            function: self.function,
            route: self.route,
            latency: self.latency.as_secs_f64() * 1000.0,
            db_time: inv.db_time.as_secs_f64() * 1000.0,
            db_queries: inv.db_queries,
            slow_queries: inv.slow_queries,
            cold_start: u8::from(self.cold_start),
            max_rss: self.max_rss_kb,
            errors: u8::from(self.class != Class::Ok),
            client_errors: u8::from(self.class == Class::ClientError),
            server_errors: u8::from(self.class == Class::ServerError),
            status_code: self.status,
            request_id: self.request_id,
            tenant_id: inv.tenant_id,
        }
    }

    /// The EMF document as JSON (what [`Record::emit`] writes).
    pub fn to_emf(&self, timestamp_ms: u128) -> serde_json::Value {
        serde_json::to_value(self.document(timestamp_ms)).unwrap_or_default()
    }

    /// Writes the record as one stdout line, where the Lambda agent picks EMF up.
    pub fn emit(&self) {
        let now = SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        let mut line = Vec::with_capacity(1024);
        if serde_json::to_writer(&mut line, &self.document(now)).is_ok() {
            line.push(b'\n');
            use std::io::Write;
            let _ = std::io::stdout().lock().write_all(&line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::strip_literals;

    #[test]
    fn literals_are_stripped_and_parameters_kept() {
        assert_eq!(
            strip_literals("SELECT a1, 'it''s' FROM t\n  WHERE x = $1 AND y > 42.5 LIMIT 51"),
            "SELECT a1, ? FROM t WHERE x = $1 AND y > ? LIMIT ?"
        );
        assert_eq!(strip_literals("SELECT pg_sleep(0.2)"), "SELECT pg_sleep(?)");
    }
}
