//! Test support: every test spawns `herald-local` in-process on a fresh database of the
//! local PostgreSQL, and talks to it over real HTTP.
//!
//! `TEST_DATABASE_URL` names the server (default `postgres://postgres@127.0.0.1:5432`); the
//! role must be allowed to create databases and roles. With `HERALD_TEST_POOLER` set to a
//! transaction-mode pooler in front of that server (`postgres://127.0.0.1:6432`, as
//! `scripts/pgbouncer` starts one), the servers' application role connects through it.

pub mod cluster;
pub mod function_process;
pub mod load;
pub mod local_process;
pub mod pgbouncer;
pub mod runtime_api;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use herald::config::JwtConfig;
use herald_local::server::{self, ServerConfig};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

pub mod ws;

pub const SECRET: &str = "test-secret-that-is-long-enough-for-hs256";

pub fn server_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

pub struct TestApp {
    pub base: String,
    pub db_name: String,
    pub owner_url: String,
    /// The migration owner (a superuser locally): sees every tenant's rows.
    pub owner: PgPool,
    pub http: reqwest::Client,
    /// The dispatcher's options as the server got them (its fault-injection counter is
    /// shared, so a test can arm it).
    pub dispatcher: herald::realtime::dispatcher::Options,
    /// False for a second server on another's database ([`TestApp::second_server`]): the
    /// first one drops the database.
    pub owns_database: bool,
    /// The PostgreSQL server the database is on (without a database name).
    pub server: String,
    /// The server's own pool (the application role), for tests that take its connections.
    pub db: herald::db::Database,
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_config(|_| {}).await
    }

    pub async fn spawn_with(jwt: JwtConfig) -> TestApp {
        Self::spawn_config(|c| c.jwt = jwt).await
    }

    pub async fn spawn_config(adjust: impl FnOnce(&mut ServerConfig)) -> TestApp {
        Self::spawn_full(&server_url(), env_pooler(), adjust).await
    }

    /// A server on a fresh database of the PostgreSQL at `server` (a private
    /// [`cluster::Cluster`], for tests that stop it), connecting to it directly.
    pub async fn spawn_on(server: &str, adjust: impl FnOnce(&mut ServerConfig)) -> TestApp {
        Self::spawn_full(server, None, adjust).await
    }

    /// A server whose application role connects through the transaction-mode pooler at
    /// `pooler` (`postgres://host:port`), in front of the tests' server.
    pub async fn spawn_behind(pooler: &str, adjust: impl FnOnce(&mut ServerConfig)) -> TestApp {
        Self::spawn_full(&server_url(), Some(pooler.to_owned()), adjust).await
    }

    async fn spawn_full(
        server: &str,
        pooler: Option<String>,
        adjust: impl FnOnce(&mut ServerConfig),
    ) -> TestApp {
        let db_name = format!("herald_test_{}", Uuid::new_v4().simple());
        let owner_url = format!("{server}/{db_name}");
        let mut config = test_config(&owner_url, pooler.as_deref());
        adjust(&mut config);
        let dispatcher = config.dispatcher.clone();
        let running = server::start(config).await.expect("herald-local starts");
        let owner = PgPool::connect(&owner_url).await.expect("owner connects");
        TestApp {
            base: format!("http://{}", running.addr),
            db_name,
            owner_url,
            owner,
            http: client(),
            dispatcher,
            owns_database: true,
            server: server.to_owned(),
            db: running.db,
        }
    }

    /// Another herald-local server, with its own pool and in-memory state, on this one's
    /// database: two instances of every function, as two Lambda containers would be.
    pub async fn second_server(&self, adjust: impl FnOnce(&mut ServerConfig)) -> TestApp {
        let mut config = test_config(&self.owner_url, env_pooler().as_deref());
        adjust(&mut config);
        let dispatcher = config.dispatcher.clone();
        let running = server::start(config).await.expect("herald-local starts");
        TestApp {
            base: format!("http://{}", running.addr),
            db_name: self.db_name.clone(),
            owner_url: self.owner_url.clone(),
            owner: self.owner.clone(),
            http: client(),
            dispatcher,
            owns_database: false,
            server: self.server.clone(),
            db: running.db,
        }
    }

    /// A new tenant owned by `owner_sub`.
    pub async fn tenant(&self, owner_sub: &str) -> Uuid {
        herald_local::tenant::create(&self.owner, "Tenant", owner_sub)
            .await
            .expect("tenant created")
            .id
    }

    pub async fn add_member(&self, tenant: Uuid, sub: &str, role: &str) {
        let mut conn = self.owner.acquire().await.unwrap();
        let mut tx = sqlx::Connection::begin(&mut *conn).await.unwrap();
        herald_local::tenant::add_member(&mut tx, tenant, sub, role)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }

    /// A client acting as `sub` in `tenant`.
    pub fn user(&self, sub: &str, tenant: Uuid) -> User<'_> {
        User {
            app: self,
            token: token(sub, None, 3600),
            tenant: Some(tenant),
        }
    }

    /// A request with no credentials at all.
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}{}", self.base, path))
    }

    /// The OpenAPI document the server serves (which must answer 200).
    pub async fn openapi(&self) -> Value {
        let reply = read(
            self.request(Method::GET, "/api/openapi.json")
                .send()
                .await
                .expect("request sent"),
        )
        .await;
        reply.ok(200).clone()
    }

    /// Runs `sql` (returning one bigint) as the owner, who is not subject to RLS.
    pub async fn count(&self, sql: &'static str, tenant: Uuid) -> i64 {
        sqlx::query_scalar(sql)
            .bind(tenant)
            .fetch_one(&self.owner)
            .await
            .expect("count query")
    }

    /// The test database's URL as the application role, which RLS binds.
    pub fn app_role_url(&self) -> String {
        self.owner_url
            .replacen("postgres://postgres@", "postgres://herald_app@", 1)
    }

    pub async fn events(&self, tenant: Uuid, kind: &str) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM outbox_events WHERE tenant_id = $1 AND type = $2")
            .bind(tenant)
            .bind(kind)
            .fetch_one(&self.owner)
            .await
            .unwrap()
    }

    pub async fn all_events(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM outbox_events")
            .fetch_one(&self.owner)
            .await
            .unwrap()
    }

    pub async fn live_contacts(&self, tenant: Uuid) -> i64 {
        self.count(
            "SELECT count(*) FROM contacts WHERE tenant_id = $1 AND deleted_at IS NULL",
            tenant,
        )
        .await
    }
}

/// Each test's database goes with it. Dropped from a thread of its own because the test's
/// runtime is shutting down; `WITH (FORCE)` ends the server's pooled connections.
impl Drop for TestApp {
    fn drop(&mut self) {
        if !self.owns_database {
            return;
        }
        let db_name = self.db_name.clone();
        let server = self.server.clone();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let url = format!("{server}/postgres");
                if let Ok(pool) = PgPool::connect(&url).await {
                    let sql = format!("DROP DATABASE IF EXISTS \"{db_name}\" WITH (FORCE)");
                    let _ = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&pool).await;
                }
            });
        })
        .join();
    }
}

/// The server configuration every test starts from: the tests' HS256 secret, a small pool,
/// and egress to loopback, where the fakes of third parties listen.
fn test_config(owner_url: &str, pooler: Option<&str>) -> ServerConfig {
    let jwt = JwtConfig {
        hs256_secret: Some(SECRET.into()),
        ..JwtConfig::default()
    };
    let mut config = ServerConfig::new(owner_url, jwt);
    if let Some(pooler) = pooler {
        let db_name = owner_url.rsplit('/').next().expect("a database name");
        config.app_database_url = Some(pooled_url(pooler, db_name));
        config.db_pooler = herald::db::Pooler::Transaction;
    }
    config.db_max_connections = 8;
    config.egress = herald::net::egress::EgressPolicy::parse("127.0.0.0/8,::1").unwrap();
    // The campaign engine's loops run only in the tests that ask for them.
    config.run_sender = false;
    config.scheduler_every = None;
    config
}

/// `HERALD_TEST_POOLER`, when set.
fn env_pooler() -> Option<String> {
    std::env::var("HERALD_TEST_POOLER")
        .ok()
        .filter(|p| !p.trim().is_empty())
}

/// The application role's URL of database `db_name` through the pooler at `pooler`
/// (`postgres://host:port`).
pub fn pooled_url(pooler: &str, db_name: &str) -> String {
    let host = pooler
        .trim_end_matches('/')
        .trim_start_matches("postgres://");
    format!("postgres://herald_app@{host}/{db_name}")
}

/// An HTTP client (rustls on ring, as Herald's own).
pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// An HS256 token as `herald-local token` issues them, with the tests' secret.
pub fn token(sub: &str, tenant: Option<Uuid>, ttl: u64) -> String {
    herald_local::token::issue(SECRET, sub, tenant, ttl).unwrap()
}

pub struct User<'a> {
    pub app: &'a TestApp,
    pub token: String,
    pub tenant: Option<Uuid>,
}

/// A response with its body read: status, headers and JSON (Null when not JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub json: Value,
}

impl Reply {
    pub fn content_type(&self) -> &str {
        self.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// Asserts an RFC 9457 problem with `status` and returns it.
    #[track_caller]
    pub fn problem(&self, status: u16) -> &Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.json
        );
        assert_eq!(
            self.content_type(),
            "application/problem+json",
            "body: {}",
            self.json
        );
        assert_eq!(self.json["status"], status);
        assert!(
            self.json["type"]
                .as_str()
                .is_some_and(|t| t.starts_with("https://herald.dev/problems/")),
            "type: {}",
            self.json
        );
        assert!(self.json["title"].is_string());
        &self.json
    }

    #[track_caller]
    pub fn ok(&self, status: u16) -> &Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.json
        );
        &self.json
    }
}

pub async fn read(response: reqwest::Response) -> Reply {
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.unwrap();
    Reply {
        status,
        headers,
        json: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

impl User<'_> {
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let mut req = self.app.request(method, path).bearer_auth(&self.token);
        if let Some(tenant) = self.tenant {
            req = req.header("X-Tenant-ID", tenant.to_string());
        }
        req
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Reply {
        read(req.send().await.expect("request sent")).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(self.request(Method::GET, path)).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.send(self.request(Method::DELETE, path)).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        self.send(self.request(Method::POST, path).json(body)).await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> Reply {
        self.send(self.request(Method::PATCH, path).json(body))
            .await
    }

    /// Creates a contact and returns it.
    pub async fn contact(&self, name: &str, phone: &str) -> Value {
        self.post(
            "/api/contacts",
            &serde_json::json!({ "name": name, "phone": phone }),
        )
        .await
        .ok(201)
        .clone()
    }
}

/// A fake third party: a real HTTP server on 127.0.0.1 serving `body` at every path and
/// counting the requests it received.
pub struct FakeServer {
    pub url: String,
    pub hits: Arc<AtomicUsize>,
}

impl FakeServer {
    pub async fn serve_json(body: Value) -> FakeServer {
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&hits);
        let router = axum::Router::new().fallback(move || {
            let body = body.clone();
            counter.fetch_add(1, Ordering::SeqCst);
            async move { axum::Json(body) }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });
        FakeServer { url, hits }
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// Waits until `check` holds, failing after `deadline`.
pub async fn eventually<F, Fut>(deadline: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(
            start.elapsed() < deadline,
            "condition not met within {deadline:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub mod receiver;
