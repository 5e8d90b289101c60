//! The system function: health, locales and the OpenAPI description (no tenant, no token),
//! the caller's tenant's WebSocket statistics, and the tenant's performance stats (owners and
//! admins).

use http::StatusCode;
use serde::Serialize;

use crate::App;
use crate::auth::Access;
use crate::domain::LocaleInfo;
use crate::http::{Body, Locale, Problem, Request, Response, response};


routes!(System:
    health [tenantless],
    locales [tenantless],
    openapi [tenantless],
    ws_stats,
    performance_stats,
);

#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok`, or `degraded` when the database does not answer.
    pub status: &'static str,
    pub database: &'static str,
    pub version: &'static str,
}

/// Liveness and database reachability.
#[utoipa::path(get, path = "/health", tag = "system",
    responses(
        (status = 200, description = "Healthy", body = Health),
        (status = 503, description = "The database does not answer", body = Health),
    ))]
pub async fn health(app: &App, _req: &Request) -> Result<Response<Body>, Problem> {
    let db_ok = app.db().ping().await;
    let health = Health {
        status: if db_ok { "ok" } else { "degraded" },
        database: if db_ok { "ok" } else { "unreachable" },
        version: env!("CARGO_PKG_VERSION"),
    };
    let status = if db_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    response::json(status, &health)
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Locales {
    pub items: Vec<LocaleInfo>,
}

/// The languages error titles are available in (chosen by `Accept-Language`).
#[utoipa::path(get, path = "/api/locales", tag = "system",
    responses((status = 200, description = "Available languages", body = Locales)))]
pub async fn locales(_app: &App, _req: &Request) -> Result<Response<Body>, Problem> {
    response::ok(&Locales {
        items: Locale::ALL.into_iter().map(Locale::info).collect(),
    })
}

/// This API's OpenAPI 3.1 description.
#[utoipa::path(get, path = "/api/openapi.json", tag = "system",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json")))]
pub async fn openapi(_app: &App, _req: &Request) -> Result<Response<Body>, Problem> {
    response::ok(&crate::api::openapi::document())
}

/// The caller's tenant's open WebSocket connections, by user and by language.
#[utoipa::path(get, path = "/api/ws/stats", tag = "system",
    responses(
        (status = 200, body = crate::realtime::stats::WsStats),
        (status = "4XX", body = crate::http::problem::ProblemDocument, content_type = "application/problem+json"),
    ))]
pub async fn ws_stats(app: &App, req: &Request) -> Result<Response<Body>, Problem> {
    let mut tx = app.begin(req, crate::auth::Access::Read).await?;
    let stats = crate::realtime::stats::stats(tx.conn()).await?;
    tx.commit().await?;
    response::ok(&stats)
}

/// The tenant's requests, error rate, latency percentiles per route, database time, query
/// counts and latest slow queries over the last `minutes`, across every instance.
#[utoipa::path(get, path = "/api/performance/stats", tag = "system",
    params(
        ("minutes" = Option<u32>, Query, minimum = 1, maximum = 1440, description = "Window in minutes, 1–1440, default 60"),
    ),
    responses(
        (status = 200, description = "The tenant's performance figures", body = crate::perfstats::PerformanceStats),
        (status = 403, description = "Not an owner or admin of the tenant", body = crate::http::problem::ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "`minutes` out of range", body = crate::http::problem::ProblemDocument, content_type = "application/problem+json"),
        (status = 429, description = "The tenant's requests-per-minute limit is spent", body = crate::http::problem::ProblemDocument, content_type = "application/problem+json"),
    ))]
pub async fn performance_stats(app: &App, req: &Request) -> Result<Response<Body>, Problem> {
    let window = crate::perfstats::Window::parse(crate::http::request::query(req, "minutes"))
        .map_err(|e| Problem::field("/minutes", e))?;
    let mut tx = app.begin(req, Access::Admin).await?;
    // This instance's own figures first, in the same transaction, so a caller reads its own
    // requests; other instances' arrive with their next flush.
    app.observer().flush_into(&mut tx).await?;
    let stats = crate::perfstats::read(&mut tx, window).await?;
    tx.commit().await?;
    response::ok(&stats)
}
