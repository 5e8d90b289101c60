//! One function's state, built once per container, and the invocation wrapper every request
//! passes through: request id, logging span, error rendering, metrics.

use std::sync::Arc;

use http::HeaderValue;
use lambda_http::RequestExt;
use uuid::Uuid;

use crate::api::{self, Endpoint, Function, Matched, Router};
use crate::apikeys::Secret;
use crate::auth::{self, Access, AuthError, Verifier};
use crate::config::Config;
use crate::db::{Database, TenantTx};
use crate::domain::Actor;
use crate::http::{Body, Locale, Problem, Request, Response, request};
use crate::idempotency::{self, Claim};
use crate::metrics;
use crate::observer::{Observer, ObserverConfig};

pub struct App {
    endpoint: Endpoint,
    router: Router,
    db: Database,
    verifier: Arc<Verifier>,
    /// This process's rollups and rate limits (shared by every app of `herald-local`).
    observer: Arc<Observer>,
    /// Whether tenants without a delivery provider use `log` (herald-local) or cannot start
    /// campaigns (AWS).
    default_log_provider: bool,
    /// Herald's public base URL (`HERALD_PUBLIC_URL`): what Twilio signs its callbacks over.
    public_url: Option<url::Url>,
    /// Which addresses tenant-chosen URLs may reach, and the guarded client built from it
    /// on first use (a cold start that sends nothing pays nothing).
    egress_policy: crate::net::egress::EgressPolicy,
    egress: std::sync::OnceLock<crate::net::egress::Egress>,
    /// How long a request holds its `Idempotency-Key` (see [`crate::idempotency`]).
    idempotency_lease: std::time::Duration,
}

impl App {
    pub fn new(endpoint: Endpoint, db: Database, verifier: Arc<Verifier>) -> App {
        let observer = Observer::new(db.app_pool().clone(), ObserverConfig::default());
        App {
            endpoint,
            router: Router::new(endpoint.routes),
            db,
            verifier,
            observer,
            default_log_provider: false,
            public_url: None,
            egress_policy: crate::net::egress::EgressPolicy::public_only(),
            egress: std::sync::OnceLock::new(),
            idempotency_lease: idempotency::LEASE,
        }
    }

    /// The same app recording into `observer` (flush interval, default rate limit).
    pub fn with_observer(mut self, observer: Arc<Observer>) -> App {
        self.observer = observer;
        self
    }

    pub fn observer(&self) -> &Arc<Observer> {
        &self.observer
    }

    /// A shorter lease on idempotency keys, for tests that crash requests on purpose.
    pub fn with_idempotency_lease(mut self, lease: std::time::Duration) -> App {
        self.idempotency_lease = lease;
        self
    }

    /// Tenants without a provider send through `log` (herald-local's default).
    pub fn with_default_log_provider(mut self, on: bool) -> App {
        self.default_log_provider = on;
        self
    }

    pub fn with_public_url(mut self, url: Option<url::Url>) -> App {
        self.public_url = url;
        self
    }

    /// The same app reaching tenant-chosen URLs under `policy` (`HERALD_EGRESS_ALLOW`).
    pub fn with_egress_policy(mut self, policy: crate::net::egress::EgressPolicy) -> App {
        self.egress_policy = policy;
        self.egress = std::sync::OnceLock::new();
        self
    }

    pub fn default_log_provider(&self) -> bool {
        self.default_log_provider
    }

    pub fn public_url(&self) -> Option<&url::Url> {
        self.public_url.as_ref()
    }

    /// The SSRF-guarded client: public addresses over https unless
    /// [`App::with_egress_policy`] allowed more.
    pub fn egress(&self) -> &crate::net::egress::Egress {
        self.egress.get_or_init(|| {
            crate::net::egress::Egress::new(
                self.egress_policy.clone(),
                crate::net::egress::Timeouts::default(),
            )
        })
    }

    /// What a function's `main` builds before serving: no network I/O, so the cold start
    /// stays short.
    pub fn from_config(endpoint: Endpoint, config: &Config) -> Result<App, sqlx::Error> {
        let db = config.database(&format!("herald-{}", endpoint.function.name()))?;
        let observer = config.observer(&db);
        Ok(App::new(endpoint, db, config.verifier())
            .with_observer(observer)
            .with_public_url(config.public_url.clone())
            .with_egress_policy(config.egress.clone()))
    }

    pub fn function(&self) -> Function {
        self.endpoint.function
    }

    pub fn db(&self) -> &Database {
        &self.db
    }

    /// Whether `req` queues messages when it succeeds: the sender has work then.
    pub fn wakes_sender(&self, req: &Request) -> bool {
        match self.function() {
            Function::Trpc => api::trpc::wakes_sender(req),
            _ => self.route(req).is_some_and(|m| m.route.wakes_sender),
        }
    }

    /// The route of this function that `req` is for (by route key, else method and path).
    pub fn route(&self, req: &Request) -> Option<Matched<'_>> {
        self.router.find(req)
    }

    /// Handles one API Gateway request. Never fails: errors become problem+json (or, for
    /// the `trpc` function, tRPC's error shape).
    pub fn serve(&self, req: Request) -> impl Future<Output = Response<Body>> + Send + '_ {
        use futures_util::future::Either;
        // Not an `async fn`: its future would hold `req` beside `serve_route`'s. The tRPC one
        // is boxed, since it holds each call's `serve_route` future.
        match self.function() {
            Function::Trpc => Either::Left(Box::pin(api::trpc::serve(self, req))),
            _ => Either::Right(self.serve_route(req)),
        }
    }

    /// Handles one request for one of this app's routes. Measured by
    /// [`metrics::instrument_with`], like every other function's invocations.
    pub async fn serve_route(&self, req: Request) -> Response<Body> {
        let (request_id, gateway_route) = request::request_id_and_route(&req);
        let matched = self.route(&req);
        let route = matched.as_ref().map_or(gateway_route.as_str(), |m| m.key);
        metrics::instrument_with(
            Some(&self.observer),
            self.endpoint.function.name(),
            route,
            &request_id,
            self.respond(req, matched, &request_id),
        )
        .await
    }

    async fn respond(
        &self,
        req: Request,
        matched: Option<Matched<'_>>,
        request_id: &str,
    ) -> Response<Body> {
        let locale = Locale::negotiate(request::header(&req, "accept-language"));
        let path = req.raw_http_path().to_owned();
        let render = |result: Result<Response<Body>, Problem>| match result {
            Ok(response) => response,
            Err(problem) => problem.into_response(locale, &path, request_id),
        };
        let mut response = match matched {
            None => render(Err(api::no_route(&req, self.function()))),
            Some(Matched { route, params, .. }) => {
                let mut req = match params {
                    Some(params) => req.with_path_parameters(params),
                    None => req,
                };
                // Boxed: its transaction's future would otherwise sit inline in every request's.
                let claim = Box::pin(self.claim_idempotency_key(&req, route));
                match claim.await {
                    Ok(None) => render((route.handler)(self, &req).await),
                    Ok(Some(Claim::Run(held))) => {
                        req.extensions_mut().insert(held.pending());
                        let response = render((route.handler)(self, &req).await);
                        // Boxed like the claim: it opens transactions of its own.
                        render(Box::pin(held.finish(&self.db, response)).await)
                    }
                    Ok(Some(Claim::Replay(response))) => response,
                    Err(problem) => render(Err(problem)),
                }
            }
        };
        let headers = response.headers_mut();
        if let Ok(value) = HeaderValue::from_str(request_id) {
            headers.insert("x-request-id", value);
        }
        if let Some(rate) = metrics::rate() {
            headers.insert("ratelimit-limit", HeaderValue::from(rate.limit));
            headers.insert("ratelimit-remaining", HeaderValue::from(rate.remaining));
            headers.insert("ratelimit-reset", HeaderValue::from(rate.reset_secs));
        }
        response
    }

    /// The verified caller, for the few routes that act outside any one tenant (creating a
    /// tenant, listing one's own). Everything else goes through [`App::begin`].
    pub async fn caller(&self, req: &Request) -> Result<auth::Claims, Problem> {
        let token = auth::bearer_token(req.headers()).map_err(unauthenticated)?;
        if Secret::from_bearer(token).is_some() {
            return Err(Problem::forbidden(
                "an API key acts only within its own tenant; this needs a member's token",
            ));
        }
        self.verifier.verify(token).await.map_err(unauthenticated)
    }

    /// Authenticates the caller, resolves the tenant the request names and opens a
    /// transaction in it, refusing non-members (403) and roles that may not do `access`.
    /// A request holding an `Idempotency-Key` gets a transaction whose commit waits for the
    /// response (see [`crate::idempotency`]).
    pub async fn begin(&self, req: &Request, access: Access) -> Result<TenantTx, Problem> {
        let mut tx = self.enter(req, access == Access::Read).await?;
        if let Some(pending) = req.extensions().get::<idempotency::Pending>()
            && pending.tenant == tx.tenant()
        {
            tx.defer_commit_to(&pending.slot);
        }
        if !tx.role().allows(access) {
            return Err(Problem::forbidden(format!(
                "the {} role may not do this",
                tx.role().as_str()
            )));
        }
        // Counted only once membership is proven: nobody can spend another tenant's limit.
        let limit = self.tenant_limit(&mut tx).await?;
        if let Some(admission) = self.observer.admit(tx.tenant(), limit) {
            metrics::note_rate(admission.state);
            if !admission.allowed {
                return Err(Problem::too_many_requests(
                    admission.state.limit,
                    admission.state.reset_secs,
                ));
            }
        }
        Ok(tx)
    }

    /// The caller's transaction in the tenant the request names, whatever its role;
    /// `READ ONLY` when `read_only`.
    async fn enter(&self, req: &Request, read_only: bool) -> Result<TenantTx, Problem> {
        let token = auth::bearer_token(req.headers()).map_err(unauthenticated)?;
        let tx = match Secret::from_bearer(token) {
            Some(key) => self.enter_with_key(req, &key, read_only).await?,
            None => self.enter_as_member(req, token, read_only).await?,
        };
        metrics::enter_tenant(tx.tenant(), &self.observer);
        Ok(tx)
    }

    async fn enter_as_member(
        &self,
        req: &Request,
        token: &str,
        read_only: bool,
    ) -> Result<TenantTx, Problem> {
        let claims = self.verifier.verify(token).await.map_err(unauthenticated)?;
        let tenant = named_tenant(req, claims.tenant_id.as_deref())?;
        let request_id = metrics::request_id();
        let tx = if read_only {
            self.db
                .begin_tenant_read_only(tenant, &claims.sub, &request_id)
                .await?
        } else {
            self.db
                .begin_tenant(tenant, &claims.sub, &request_id)
                .await?
        };
        tx.ok_or_else(|| Problem::forbidden("you are not a member of this tenant"))
    }

    /// The transaction of an API key, in the key's tenant with the key's role. A request
    /// naming another tenant is refused (403); a key's last use is recorded once a minute,
    /// in a transaction of its own (a read-only one cannot), before the request's.
    async fn enter_with_key(
        &self,
        req: &Request,
        key: &Secret,
        read_only: bool,
    ) -> Result<TenantTx, Problem> {
        let (request_id, hash) = (metrics::request_id(), key.hash());
        let refused = || Problem::unauthenticated("the API key is unknown, revoked or expired");
        let mut entry =
            (self.db.begin_api_key(&hash, &request_id, read_only).await?).ok_or_else(refused)?;
        let tenant = entry.tx.tenant();
        if named_tenant(req, Some(&tenant.to_string()))? != tenant {
            entry.tx.rollback().await?;
            return Err(Problem::forbidden("this API key belongs to another tenant"));
        }
        if entry.stale {
            let Actor::ApiKey { id } = *entry.tx.actor() else {
                unreachable!("an API key's transaction acts for the key")
            };
            entry.tx.rollback().await?;
            self.db.touch_api_key(id).await?;
            entry = (self.db.begin_api_key(&hash, &request_id, read_only).await?)
                .ok_or_else(refused)?;
        }
        Ok(entry.tx)
    }

    /// The tenant's own requests-per-minute limit, if it has one: read once membership is
    /// proven, and only when this process does not know it yet.
    async fn tenant_limit(&self, tx: &mut TenantTx) -> Result<Option<u32>, sqlx::Error> {
        let tenant = tx.tenant();
        if let Some(known) = self.observer.known_limit(tenant) {
            return Ok(known);
        }
        let limit = crate::ratelimit::read_limit(tx.conn(), tenant).await?;
        self.observer.learn_limit(tenant, limit);
        Ok(limit)
    }

    /// Takes the request's `Idempotency-Key`, if it has one, in the caller's tenant (see
    /// [`crate::idempotency`]). Any member may hold a key; the handler still checks roles.
    /// Only a POST in a tenant holds a key: a tenantless route has no tenant to scope it in.
    async fn claim_idempotency_key(
        &self,
        req: &Request,
        route: &api::Route,
    ) -> Result<Option<Claim>, Problem> {
        if route.tenantless || req.method() != http::Method::POST {
            return Ok(None);
        }
        let Some(key) = idempotency::Key::from_header(req)? else {
            return Ok(None);
        };
        if route.secret_answer {
            return Err(Problem::malformed(
                "this route takes no Idempotency-Key: its answer holds a secret shown once, \
                 which Herald does not store to replay",
            ));
        }
        let tx = self.enter(req, false).await?;
        idempotency::claim(
            tx,
            key,
            idempotency::Fingerprint::of(req),
            self.idempotency_lease,
        )
        .await
        .map(Some)
    }
}

/// The tenant a request names: `X-Tenant-ID`, else `tenantId`, else the token's claim. Each
/// one sent must be a UUID, and the header and the parameter must agree when both are sent:
/// a request that names its tenant ambiguously is refused rather than guessed at.
fn named_tenant(req: &Request, claim: Option<&str>) -> Result<Uuid, Problem> {
    let parse = |raw: &str, name: &str| {
        Uuid::try_parse(raw.trim())
            .map_err(|_| Problem::malformed(format!("{name} must be a tenant id (a UUID)")))
    };
    let header = request::header(req, "x-tenant-id")
        .map(|h| parse(h, "the X-Tenant-ID header"))
        .transpose()?;
    let query = request::query(req, "tenantId")
        .map(|q| parse(q, "the tenantId query parameter"))
        .transpose()?;
    match (header, query) {
        (Some(h), Some(q)) if h != q => Err(Problem::malformed(
            "the X-Tenant-ID header and the tenantId query parameter name different tenants",
        )),
        (Some(t), _) | (None, Some(t)) => Ok(t),
        (None, None) => match claim {
            Some(c) => parse(c, "the token's tenant_id claim"),
            None => Err(Problem::new(
                crate::http::problem::Kind::TenantRequired,
                "name the tenant with the X-Tenant-ID header or the tenantId query parameter",
            )),
        },
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
///
/// A successful write may have committed events: the dispatcher is then kicked (when
/// `HERALD_DISPATCHER_FUNCTION` names it) before the response is returned, because Lambda
/// freezes the container right after. Routes that queue messages kick the sender the same
/// way (`HERALD_SENDER_FUNCTION`).
/// Rollups still in memory are written when Lambda shuts the container down (SIGTERM,
/// delivered because the graceful-shutdown helper registers a no-op extension).
pub async fn run(app: App) -> Result<(), lambda_http::Error> {
    let observer = Arc::clone(app.observer());
    lambda_runtime::spawn_graceful_shutdown_handler(move || async move {
        observer.flush().await;
    })
    .await;
    let app = Arc::new(app);
    let dispatcher =
        crate::kick::Kick::from_env(crate::realtime::DISPATCHER_FUNCTION_VAR).map(Arc::new);
    let sender = crate::kick::Kick::from_env(crate::engine::SENDER_FUNCTION_VAR).map(Arc::new);
    lambda_http::run(lambda_http::service_fn(move |req: Request| {
        let app = Arc::clone(&app);
        let (dispatcher, sender) = (dispatcher.clone(), sender.clone());
        async move {
            let writes = !matches!(*req.method(), http::Method::GET | http::Method::HEAD);
            let queues = app.wakes_sender(&req);
            let response = app.serve(req).await;
            if response.status().is_success() {
                if let Some(kick) = dispatcher.filter(|_| writes) {
                    kick.kick().await;
                }
                if let Some(kick) = sender.filter(|_| queues) {
                    kick.kick().await;
                }
            }
            Ok::<_, std::convert::Infallible>(response)
        }
    }))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A future awaiting another inline holds all of its state, and is moved whole when
    /// boxed or spawned: no request future may hold sqlx's acquire future inline (figures in
    /// bench/README.md, "Why the code is shaped so").
    #[tokio::test]
    async fn request_futures_do_not_hold_a_pool_acquire_inline() {
        let options: sqlx::postgres::PgConnectOptions =
            "postgres://nobody@127.0.0.1/nothing".parse().unwrap();
        let db = Database::connect_lazy_with(options, 1, std::time::Duration::from_secs(1), "t");
        let jwt = crate::config::JwtConfig {
            hs256_secret: Some("secret".into()),
            ..Default::default()
        };
        let app = App::new(
            Function::Contacts.endpoint(),
            db,
            Arc::new(Verifier::new(&jwt)),
        );
        // Only built, never polled: nothing connects.
        let acquire = std::mem::size_of_val(&app.db.pool().acquire());
        let serve = std::mem::size_of_val(&app.serve(Request::default()));
        let req = Request::default();
        let handler = (app.endpoint.routes[0].handler)(&app, &req);
        let handler = std::mem::size_of_val(&*handler);
        assert!(
            serve < acquire && handler < acquire,
            "App::serve's future is {serve} bytes and the contacts handler's {handler}, \
             sqlx's acquire future {acquire}"
        );
    }
}
