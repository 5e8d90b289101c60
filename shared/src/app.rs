//! One function's state, built once per container, and the invocation wrapper every request
//! passes through: request id, logging span, error rendering, metrics.

use std::sync::Arc;
use std::time::Instant;

use http::HeaderValue;
use lambda_http::RequestExt;
use tracing::Instrument;
use uuid::Uuid;

use crate::api::Function;
use crate::auth::{self, Access, AuthError, Verifier};
use crate::config::Config;
use crate::db::{Database, TenantTx};
use crate::http::{Body, Locale, Problem, Request, Response, request};
use crate::metrics;

pub struct App {
    function: Function,
    db: Database,
    verifier: Arc<Verifier>,
    /// Which addresses tenant-chosen URLs may reach, and the guarded client built from it
    /// on first use (a cold start that sends nothing pays nothing).
    egress_policy: crate::http::egress::EgressPolicy,
    egress: std::sync::OnceLock<crate::http::egress::Egress>,
}

impl App {
    pub fn new(function: Function, db: Database, verifier: Arc<Verifier>) -> App {
        App {
            function,
            db,
            verifier,
            egress_policy: crate::http::egress::EgressPolicy::public_only(),
            egress: std::sync::OnceLock::new(),
        }
    }

    /// The same app reaching tenant-chosen URLs under `policy` (`HERALD_EGRESS_ALLOW`).
    pub fn with_egress_policy(mut self, policy: crate::http::egress::EgressPolicy) -> App {
        self.egress_policy = policy;
        self.egress = std::sync::OnceLock::new();
        self
    }

    /// The SSRF-guarded client: public addresses over https unless
    /// [`App::with_egress_policy`] allowed more.
    pub fn egress(&self) -> &crate::http::egress::Egress {
        self.egress.get_or_init(|| {
            crate::http::egress::Egress::new(
                self.egress_policy.clone(),
                crate::http::egress::Timeouts::default(),
            )
        })
    }

    /// What a function's `main` builds before serving: no network I/O, so the cold start
    /// stays short.
    pub fn from_config(function: Function, config: &Config) -> Result<App, sqlx::Error> {
        let db = Database::connect_lazy(
            &config.database_url,
            config.db_max_connections,
            config.slow_query,
            &format!("herald-{}", function.name()),
        )?;
        Ok(App::new(function, db, Arc::new(Verifier::new(&config.jwt)))
            .with_egress_policy(config.egress.clone()))
    }

    pub fn function(&self) -> Function {
        self.function
    }

    pub fn db(&self) -> &Database {
        &self.db
    }

    /// Handles one API Gateway request. Never fails: errors become problem+json.
    pub async fn serve(&self, req: Request) -> Response<Body> {
        let started = Instant::now();
        let cold_start = metrics::cold_start();
        let (request_id, route) = request::request_id_and_route(&req);
        let locale = Locale::negotiate(request::header(&req, "accept-language"));
        let path = req.raw_http_path().to_owned();
        let span = tracing::info_span!(
            "request",
            request_id = %request_id,
            function = self.function.name(),
            route = %route,
            tenant_id = tracing::field::Empty,
        );

        let (result, invocation) =
            metrics::measure(self.function.handle(self, req).instrument(span.clone())).await;
        let mut response = match result {
            Ok(response) => response,
            Err(problem) => problem.into_response(locale, &path, &request_id),
        };
        if let Ok(value) = HeaderValue::from_str(&request_id) {
            response.headers_mut().insert("x-request-id", value);
        }

        let latency = started.elapsed();
        let status = response.status().as_u16();
        span.in_scope(|| {
            tracing::info!(
                status,
                latency_ms = latency.as_secs_f64() * 1000.0,
                db_queries = invocation.db_queries,
                "request finished"
            )
        });
        metrics::Record {
            function: self.function.name(),
            route: &route,
            request_id: &request_id,
            status,
            latency,
            cold_start,
            invocation: &invocation,
        }
        .emit();
        response
    }

    /// The verified caller, for the few routes that act outside any one tenant (creating a
    /// tenant, listing one's own). Everything else goes through [`App::begin`].
    pub async fn caller(&self, req: &Request) -> Result<auth::Claims, Problem> {
        let token = auth::bearer_token(req.headers()).map_err(unauthenticated)?;
        self.verifier.verify(token).await.map_err(unauthenticated)
    }

    /// Authenticates the caller, resolves the tenant the request names and opens a
    /// transaction in it, refusing non-members (403) and roles that may not do `access`.
    pub async fn begin(&self, req: &Request, access: Access) -> Result<TenantTx, Problem> {
        let claims = self.caller(req).await?;

        let named = request::header(req, "x-tenant-id")
            .or_else(|| request::query(req, "tenantId"))
            .or(claims.tenant_id.as_deref())
            .ok_or_else(|| {
                Problem::new(
                    crate::http::problem::Kind::TenantRequired,
                    "name the tenant with the X-Tenant-ID header or the tenantId query parameter",
                )
            })?;
        let tenant = Uuid::try_parse(named.trim())
            .map_err(|_| Problem::malformed("the tenant id must be a UUID"))?;

        let tx = self
            .db
            .begin_tenant(tenant, &claims.sub)
            .await?
            .ok_or_else(|| Problem::forbidden("you are not a member of this tenant"))?;
        if !tx.role().allows(access) {
            return Err(Problem::forbidden(format!(
                "the {} role may not do this",
                tx.role().as_str()
            )));
        }
        Ok(tx)
    }
}

fn unauthenticated(err: AuthError) -> Problem {
    match err {
        AuthError::KeysUnavailable(reason) => {
            tracing::error!(%reason, "JWKS unavailable");
            Problem::unavailable("token keys are unavailable; retry shortly")
        }
        other => {
            tracing::info!(reason = %other, "token refused");
            Problem::unauthenticated(other.to_string())
        }
    }
}

/// Runs `app` under the Lambda runtime: API Gateway HTTP API events in, responses out.
pub async fn run(app: App) -> Result<(), lambda_http::Error> {
    let app = Arc::new(app);
    lambda_http::run(lambda_http::service_fn(move |req: Request| {
        let app = Arc::clone(&app);
        async move { Ok::<_, std::convert::Infallible>(app.serve(req).await) }
    }))
    .await
}
