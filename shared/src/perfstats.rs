//! `GET /api/performance/stats`: a tenant's figures over the last minutes, read from the
//! per-minute rollups every instance writes (see [`crate::rollup`]).

use serde::Serialize;
use sqlx::FromRow;
use time::OffsetDateTime;

use crate::db::TenantTx;
use crate::rollup::quantile;

/// The longest window one may ask for: a day of minutes.
pub const MAX_MINUTES: u32 = 1440;
pub const DEFAULT_MINUTES: u32 = 60;
/// Slow queries listed.
const LATEST_SLOW: i64 = 20;

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PerformanceStats {
    pub tenant_id: uuid::Uuid,
    pub window_minutes: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub from: OffsetDateTime,
    pub requests: i64,
    pub client_errors: i64,
    pub server_errors: i64,
    /// (client + server errors) / requests; 0 without requests.
    pub error_rate: f64,
    pub latency_ms: Latency,
    pub database: DatabaseStats,
    /// Per function and route, busiest first.
    pub routes: Vec<RouteStats>,
}

#[derive(Serialize, utoipa::ToSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct Latency {
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
    pub avg: Option<f64>,
    pub max: Option<f64>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseStats {
    pub time_ms: f64,
    pub queries: i64,
    pub slow_query_count: i64,
    /// The latest slow statements, newest first, literals stripped.
    pub slow_queries: Vec<SlowQueryRow>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouteStats {
    pub function: String,
    pub route: String,
    pub requests: i64,
    pub client_errors: i64,
    pub server_errors: i64,
    pub error_rate: f64,
    pub latency_ms: Latency,
    pub db_time_ms: f64,
    pub queries: i64,
    pub slow_queries: i64,
}

#[derive(Serialize, FromRow, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SlowQueryRow {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub function: String,
    pub route: String,
    pub request_id: String,
    pub duration_ms: f64,
    pub statement: String,
}

#[derive(FromRow)]
struct RouteRow {
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

/// How many minutes back the stats reach: 1 to [`MAX_MINUTES`], default [`DEFAULT_MINUTES`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window(u32);

impl Window {
    pub fn parse(raw: Option<&str>) -> Result<Window, String> {
        let Some(raw) = raw else {
            return Ok(Window(DEFAULT_MINUTES));
        };
        match raw.trim().parse::<u32>() {
            Ok(n) if (1..=MAX_MINUTES).contains(&n) => Ok(Window(n)),
            _ => Err(format!(
                "must be a whole number of minutes from 1 to {MAX_MINUTES}"
            )),
        }
    }

    pub fn minutes(self) -> u32 {
        self.0
    }
}

/// The tenant's figures over the last `window` minutes (the current one included).
pub async fn read(tx: &mut TenantTx, window: Window) -> Result<PerformanceStats, sqlx::Error> {
    let minutes = window.minutes();
    let now = OffsetDateTime::now_utc();
    let from = now
        .replace_second(0)
        .unwrap_or(now)
        .replace_nanosecond(0)
        .unwrap_or(now)
        - time::Duration::minutes(i64::from(minutes) - 1);
    let tenant = tx.tenant();
    // One row per minute and route; summed here, histograms included.
    let minutes_rows: Vec<RouteRow> = sqlx::query_as(
        "SELECT function, route, requests, client_errors, server_errors, latency_ms,
                latency_max_ms, db_ms, queries, slow_queries, latency_buckets
         FROM perf_minutes WHERE tenant_id = $1 AND minute >= $2",
    )
    .bind(tenant)
    .bind(from)
    .fetch_all(tx.conn())
    .await?;
    let rows = merge_minutes(minutes_rows);
    let slow: Vec<SlowQueryRow> = sqlx::query_as(
        "SELECT at, function, route, request_id, duration_ms, statement FROM slow_queries
         WHERE tenant_id = $1 AND at >= $2 ORDER BY id DESC LIMIT $3",
    )
    .bind(tenant)
    .bind(from)
    .bind(LATEST_SLOW)
    .fetch_all(tx.conn())
    .await?;
    Ok(summarise(tenant, minutes, from, rows, slow))
}

fn merge_minutes(rows: Vec<RouteRow>) -> Vec<RouteRow> {
    let mut by_route: std::collections::BTreeMap<(String, String), RouteRow> = Default::default();
    for r in rows {
        match by_route.entry((r.function.clone(), r.route.clone())) {
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert(r);
            }
            std::collections::btree_map::Entry::Occupied(mut o) => {
                let m = o.get_mut();
                m.requests += r.requests;
                m.client_errors += r.client_errors;
                m.server_errors += r.server_errors;
                m.latency_ms += r.latency_ms;
                m.latency_max_ms = m.latency_max_ms.max(r.latency_max_ms);
                m.db_ms += r.db_ms;
                m.queries += r.queries;
                m.slow_queries += r.slow_queries;
                if m.latency_buckets.len() < r.latency_buckets.len() {
                    m.latency_buckets.resize(r.latency_buckets.len(), 0);
                }
                for (slot, n) in m.latency_buckets.iter_mut().zip(r.latency_buckets) {
                    *slot += n;
                }
            }
        }
    }
    by_route.into_values().collect()
}

fn route_stats(r: RouteRow) -> RouteStats {
    RouteStats {
        latency_ms: latency_of(
            &r.latency_buckets,
            r.latency_ms,
            r.latency_max_ms,
            r.requests,
        ),
        error_rate: rate(r.client_errors + r.server_errors, r.requests),
        function: r.function,
        route: r.route,
        requests: r.requests,
        client_errors: r.client_errors,
        server_errors: r.server_errors,
        db_time_ms: r.db_ms,
        queries: r.queries,
        slow_queries: r.slow_queries,
    }
}

fn summarise(
    tenant: uuid::Uuid,
    minutes: u32,
    from: OffsetDateTime,
    rows: Vec<RouteRow>,
    slow: Vec<SlowQueryRow>,
) -> PerformanceStats {
    let mut all = vec![0i64; crate::rollup::bucket_count()];
    let mut routes: Vec<RouteStats> = Vec::with_capacity(rows.len());
    let (mut requests, mut client, mut server, mut latency, mut max) = (0, 0, 0, 0.0, 0f64);
    let (mut db, mut queries, mut slow_count) = (0.0, 0, 0);
    for r in rows {
        for (i, n) in r.latency_buckets.iter().enumerate() {
            if let Some(slot) = all.get_mut(i) {
                *slot += n;
            }
        }
        requests += r.requests;
        client += r.client_errors;
        server += r.server_errors;
        latency += r.latency_ms;
        max = max.max(r.latency_max_ms);
        db += r.db_ms;
        queries += r.queries;
        slow_count += r.slow_queries;
        routes.push(route_stats(r));
    }
    routes.sort_by(|a, b| b.requests.cmp(&a.requests).then(a.route.cmp(&b.route)));
    PerformanceStats {
        tenant_id: tenant,
        window_minutes: minutes,
        from,
        requests,
        client_errors: client,
        server_errors: server,
        error_rate: rate(client + server, requests),
        latency_ms: latency_of(&all, latency, max, requests),
        database: DatabaseStats {
            time_ms: db,
            queries,
            slow_query_count: slow_count,
            slow_queries: slow,
        },
        routes,
    }
}

fn rate(errors: i64, requests: i64) -> f64 {
    if requests > 0 {
        errors as f64 / requests as f64
    } else {
        0.0
    }
}

fn latency_of(buckets: &[i64], sum: f64, max: f64, requests: i64) -> Latency {
    if requests <= 0 {
        return Latency::default();
    }
    // An estimate from a bucket never exceeds the slowest request actually seen.
    let q = |p| quantile(buckets, p).map(|v: f64| v.min(max));
    Latency {
        p50: q(0.50),
        p95: q(0.95),
        p99: q(0.99),
        avg: Some(sum / requests as f64),
        max: Some(max),
    }
}
