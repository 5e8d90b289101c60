//! Per-minute performance rollups: aggregated in memory, flushed to PostgreSQL in batches.
//!
//! A request never writes its own figures. Each process adds them to an in-memory map keyed
//! by tenant, minute, function and route (counts, error classes, latency histogram, database
//! time, queries) and [`flush`] upserts the whole map now and then — at most every
//! `HERALD_STATS_FLUSH_SECS`, at shutdown, and before the stats endpoint reads — adding to
//! what every other instance wrote for the same minute. Percentiles come from the summed
//! histograms, so they hold across instances.
//!
//! Rows older than 25 hours (the endpoint's longest window is a day) go with the next flush
//! of their tenant.
//!
//! The tables are tenant tables under FORCE RLS. A flush writes each tenant's rows in a
//! short transaction of its own under that tenant's context (`set_config('app.tenant_id',
//! …, true)`), exactly as a request would: no definer function is needed, and no flush can
//! write into a tenant it did not name.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::db::{Conn, Pool};
use serde::Serialize;
use uuid::Uuid;

use crate::db::TenantTx;

/// Upper bounds (ms) of the latency histogram's buckets: ×1.25 steps from 0.25 ms to about
/// 80 s, so an estimated percentile is within 12 % of the truth. The last bucket is
/// unbounded. Stored as `perf_minutes.latency_buckets`; change only by appending.
pub fn bucket_bounds() -> &'static [f64] {
    static BOUNDS: std::sync::OnceLock<Vec<f64>> = std::sync::OnceLock::new();
    BOUNDS.get_or_init(|| (0..57).map(|i| 0.25 * 1.25f64.powi(i)).collect())
}

/// Buckets stored per row: one per bound plus the overflow.
pub fn bucket_count() -> usize {
    bucket_bounds().len() + 1
}

fn bucket_of(ms: f64) -> usize {
    bucket_bounds().partition_point(|&bound| bound < ms)
}

/// The `q` quantile (0–1) of a histogram, interpolated within its bucket.
pub fn quantile(buckets: &[i64], q: f64) -> Option<f64> {
    let total: i64 = buckets.iter().sum();
    if total <= 0 {
        return None;
    }
    let bounds = bucket_bounds();
    let rank = (q * total as f64).ceil().max(1.0);
    let mut seen = 0.0;
    for (i, &n) in buckets.iter().enumerate() {
        let n = n as f64;
        if n > 0.0 && seen + n >= rank {
            let low = if i == 0 { 0.0 } else { bounds[i - 1] };
            let high = bounds.get(i).copied().unwrap_or(low * 1.25);
            return Some(low + (high - low) * ((rank - seen) / n));
        }
        seen += n;
    }
    None
}

/// How an invocation ended, for the Errors metrics and the rollups.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    Ok,
    /// The caller's fault (HTTP 4xx).
    ClientError,
    /// Ours (HTTP 5xx, or a non-HTTP invocation that failed).
    ServerError,
}

/// A statement over `SLOW_QUERY_MS`.
#[derive(Debug, Clone)]
pub struct SlowQuery {
    pub at: SystemTime,
    pub duration: Duration,
    /// The SQL with string and number literals replaced by `?`.
    pub statement: String,
}

/// One finished invocation, as [`crate::metrics::instrument`] hands it over.
pub struct Sample {
    pub tenant: Uuid,
    pub at: SystemTime,
    pub function: String,
    pub route: String,
    pub class: Class,
    pub latency: Duration,
    pub db_time: Duration,
    pub queries: u32,
    pub slow_queries: u32,
    /// Slow statements with the request id they ran for.
    pub slow: Vec<(SlowQuery, String)>,
}

#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Key {
    minute: i64,
    function: String,
    route: String,
}

#[derive(Serialize)]
struct Row {
    minute: String,
    function: String,
    route: String,
    requests: i64,
    client_errors: i64,
    server_errors: i64,
    latency_ms: f64,
    latency_max_ms: f64,
    db_ms: f64,
    queries: i64,
    slow_queries: i64,
    latency_buckets: Vec<i64>,
}

#[derive(Serialize)]
struct SlowRow {
    at: String,
    function: String,
    route: String,
    request_id: String,
    duration_ms: f64,
    statement: String,
}

#[derive(Default)]
struct TenantBatch {
    rows: HashMap<Key, Row>,
    slow: Vec<SlowRow>,
}

/// The rows not yet flushed, per tenant.
#[derive(Default)]
pub struct Collector {
    pending: Mutex<HashMap<Uuid, TenantBatch>>,
}

/// Slow statements kept in memory per tenant between flushes.
const SLOW_PER_BATCH: usize = 50;

impl Collector {
    pub fn add(&self, s: Sample) {
        let since = s.at.duration_since(UNIX_EPOCH).unwrap_or_default();
        let minute = (since.as_secs() / 60 * 60) as i64;
        let latency_ms = s.latency.as_secs_f64() * 1000.0;
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let batch = pending.entry(s.tenant).or_default();
        let row = batch
            .rows
            .entry(Key {
                minute,
                function: s.function.clone(),
                route: s.route.clone(),
            })
            .or_insert_with(|| Row {
                minute: rfc3339(UNIX_EPOCH + Duration::from_secs(minute as u64)),
                function: s.function.clone(),
                route: s.route.clone(),
                requests: 0,
                client_errors: 0,
                server_errors: 0,
                latency_ms: 0.0,
                latency_max_ms: 0.0,
                db_ms: 0.0,
                queries: 0,
                slow_queries: 0,
                latency_buckets: vec![0; bucket_count()],
            });
        row.requests += 1;
        row.client_errors += i64::from(s.class == Class::ClientError);
        row.server_errors += i64::from(s.class == Class::ServerError);
        row.latency_ms += latency_ms;
        row.latency_max_ms = row.latency_max_ms.max(latency_ms);
        row.db_ms += s.db_time.as_secs_f64() * 1000.0;
        row.queries += i64::from(s.queries);
        row.slow_queries += i64::from(s.slow_queries);
        row.latency_buckets[bucket_of(latency_ms)] += 1;
        for (slow, request_id) in s.slow {
            if batch.slow.len() >= SLOW_PER_BATCH {
                break;
            }
            batch.slow.push(SlowRow {
                at: rfc3339(slow.at),
                function: s.function.clone(),
                route: s.route.clone(),
                request_id,
                duration_ms: slow.duration.as_secs_f64() * 1000.0,
                statement: slow.statement,
            });
        }
    }

    /// Tenants with rows waiting (a flush is due early when this grows large).
    pub fn tenants_pending(&self) -> usize {
        self.pending.lock().map(|p| p.len()).unwrap_or(0)
    }

    fn take(&self) -> HashMap<Uuid, TenantBatch> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn take_tenant(&self, tenant: Uuid) -> Option<TenantBatch> {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&tenant)
    }
}

/// Writes `tenant`'s collected rows inside `tx`, a transaction already in that tenant (the
/// stats endpoint reads its own instance's latest figures this way, without a second
/// connection).
pub async fn flush_tenant(
    collector: &Collector,
    tx: &mut TenantTx,
    slow_cap: i64,
) -> Result<(), sqlx::Error> {
    let tenant = tx.tenant();
    match collector.take_tenant(tenant) {
        Some(batch) => write_batch(tx.conn(), tenant, batch, slow_cap).await,
        None => Ok(()),
    }
}

/// Writes everything collected so far: one transaction per tenant, one upsert of all its
/// rows. A tenant whose write fails (deleted meanwhile, database gone) loses that batch, and
/// only that one; it is logged.
pub async fn flush(collector: &Collector, pool: &Pool, slow_cap: i64) {
    let batches = collector.take();
    let mut tenants: Vec<_> = batches.into_iter().collect();
    tenants.sort_by_key(|(t, _)| *t);
    for (tenant, batch) in tenants {
        if let Err(error) = write_tenant(pool, tenant, batch, slow_cap).await {
            tracing::warn!(%tenant, %error, "performance rollups not written");
        }
    }
}

async fn write_tenant(
    pool: &Pool,
    tenant: Uuid,
    batch: TenantBatch,
    slow_cap: i64,
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    tx.enter_service(tenant).await?;
    write_batch(tx.conn(), tenant, batch, slow_cap).await?;
    tx.commit().await
}

async fn write_batch(
    mut conn: Conn<'_>,
    tenant: Uuid,
    batch: TenantBatch,
    slow_cap: i64,
) -> Result<(), sqlx::Error> {
    let mut rows: Vec<(Key, Row)> = batch.rows.into_iter().collect();
    // A fixed order: concurrent flushes from other instances lock rows in the same order.
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    let rows: Vec<Row> = rows.into_iter().map(|(_, r)| r).collect();
    let has_slow = !batch.slow.is_empty();
    sqlx::query(WRITE_BATCH)
        .bind(tenant)
        .bind(sqlx::types::Json(&rows))
        .bind(sqlx::types::Json(&batch.slow))
        .execute(conn.reborrow())
        .await?;
    if has_slow {
        cap_slow_queries(conn, tenant, slow_cap).await?;
    }
    Ok(())
}

/// Keeps the newest `slow_cap` slow queries of the tenant.
async fn cap_slow_queries(conn: Conn<'_>, tenant: Uuid, slow_cap: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "DELETE FROM slow_queries WHERE tenant_id = $1 AND id <= (
            SELECT id FROM slow_queries WHERE tenant_id = $1
            ORDER BY id DESC OFFSET $2 LIMIT 1)",
    )
    .bind(tenant)
    .bind(slow_cap)
    .execute(conn)
    .await?;
    Ok(())
}

/// One tenant's batch in one statement: drop minutes older than 25 hours, append the slow
/// queries, and add the rows into their minutes ($1 tenant, $2 rows, $3 slow queries).
const WRITE_BATCH: &str = "WITH expired AS (
        DELETE FROM perf_minutes WHERE tenant_id = $1 AND minute < now() - interval '25 hours'
    ),
    slow AS (
        INSERT INTO slow_queries (tenant_id, at, function, route, request_id, duration_ms, statement)
        SELECT $1, s.at, s.function, s.route, s.request_id, s.duration_ms, s.statement
        FROM jsonb_to_recordset($3) AS s(at timestamptz, function text, route text,
            request_id text, duration_ms double precision, statement text)
    )
    INSERT INTO perf_minutes AS p (tenant_id, minute, function, route, requests,
        client_errors, server_errors, latency_ms, latency_max_ms, db_ms, queries,
        slow_queries, latency_buckets)
    SELECT $1, r.minute, r.function, r.route, r.requests, r.client_errors, r.server_errors,
        r.latency_ms, r.latency_max_ms, r.db_ms, r.queries, r.slow_queries, r.latency_buckets
    FROM jsonb_to_recordset($2) AS r(minute timestamptz, function text, route text,
        requests bigint, client_errors bigint, server_errors bigint,
        latency_ms double precision, latency_max_ms double precision,
        db_ms double precision, queries bigint, slow_queries bigint,
        latency_buckets bigint[])
    ON CONFLICT (tenant_id, minute, function, route) DO UPDATE SET
        requests = p.requests + excluded.requests,
        client_errors = p.client_errors + excluded.client_errors,
        server_errors = p.server_errors + excluded.server_errors,
        latency_ms = p.latency_ms + excluded.latency_ms,
        latency_max_ms = greatest(p.latency_max_ms, excluded.latency_max_ms),
        db_ms = p.db_ms + excluded.db_ms,
        queries = p.queries + excluded.queries,
        slow_queries = p.slow_queries + excluded.slow_queries,
        latency_buckets = ARRAY(
            SELECT coalesce(a, 0) + coalesce(b, 0)
            FROM unnest(p.latency_buckets, excluded.latency_buckets) WITH ORDINALITY AS u(a, b, i)
            ORDER BY i)";

fn rfc3339(at: SystemTime) -> String {
    time::OffsetDateTime::from(at)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_come_from_the_histogram() {
        let mut buckets = vec![0i64; bucket_count()];
        for ms in 1..=100 {
            buckets[bucket_of(ms as f64)] += 1;
        }
        let p50 = quantile(&buckets, 0.5).unwrap();
        let p99 = quantile(&buckets, 0.99).unwrap();
        assert!((40.0..=62.5).contains(&p50), "{p50}");
        assert!((79.0..=125.0).contains(&p99), "{p99}");
        assert_eq!(quantile(&vec![0; bucket_count()], 0.5), None);
        assert_eq!(bucket_of(0.1), 0);
        assert_eq!(bucket_of(1e9), bucket_count() - 1);
    }
}
