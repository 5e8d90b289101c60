//! The database: a pool for the application role and the one way to reach tenant data.
//!
//! Handlers never see the pool. They get a [`TenantTx`]: a transaction whose tenant was set
//! with `set_config('app.tenant_id', …, true)` (transaction-local, so a pooled connection
//! never carries one caller's tenant to the next) and whose caller was found in
//! `tenant_members`. Row-level security does the rest, even for a query that forgets its
//! `WHERE tenant_id`.
//!
//! Every statement runs inside a transaction and leaves no session state behind, so the
//! connections may pass through a transaction-mode pooler (PgBouncer, Supavisor, RDS Proxy):
//! [`Pooler`] says which, and with it whether statements may be prepared under a name.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions, PgQueryResult, PgRow};
use sqlx::{
    ConnectOptions, Either, Execute, Executor, FromRow, PgConnection, PgPool, Postgres,
    QueryBuilder, Transaction,
};
use uuid::Uuid;

use crate::domain::{Actor, Paging, Role};

mod error;

pub use error::StoreError;

/// Herald's schema migrations, embedded in every binary that may run them.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// What stands between the functions and PostgreSQL (`DATABASE_POOLER`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Pooler {
    /// Straight to the server: statements are prepared once per connection, by name.
    #[default]
    None,
    /// A transaction-mode pooler that does not track prepared statements (PgBouncer before
    /// 1.21 or with `max_prepared_statements = 0`, Supavisor): a server connection serves
    /// other clients between transactions, so statements are unnamed and prepared each time.
    Transaction,
    /// A transaction-mode pooler that keeps track of named statements itself: RDS Proxy,
    /// PgBouncer 1.21+ with `max_prepared_statements`. Named statements spare every query a
    /// round trip (bench/README.md, `pooler`).
    RdsProxy,
}

impl FromStr for Pooler {
    type Err = String;

    fn from_str(s: &str) -> Result<Pooler, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "" | "none" => Ok(Pooler::None),
            "transaction" | "pgbouncer" | "supavisor" => Ok(Pooler::Transaction),
            "rds-proxy" | "transaction-prepared" => Ok(Pooler::RdsProxy),
            other => Err(format!(
                "{other:?} is not one of none, transaction (pgbouncer, supavisor), \
                 rds-proxy (transaction-prepared)"
            )),
        }
    }
}

impl Pooler {
    /// Whether statements may be prepared under a name and reused on the same connection.
    pub fn named_statements(self) -> bool {
        self != Pooler::Transaction
    }

    /// `options` as this pooler accepts them: no startup parameter a pooler refuses
    /// (PgBouncer rejects `extra_float_digits`; PostgreSQL 12+ defaults to exact floats).
    pub fn connect_options(self, options: PgConnectOptions) -> PgConnectOptions {
        match self {
            Pooler::None => options,
            Pooler::Transaction => options.extra_float_digits(None).statement_cache_capacity(0),
            Pooler::RdsProxy => options.extra_float_digits(None),
        }
    }
}

/// The application role's pool, and how its statements must be sent.
#[derive(Clone, Debug)]
pub struct Pool {
    pg: PgPool,
    /// What the pool was made with, to open connections the same way with new credentials.
    pooler: Pooler,
    application: Arc<str>,
    slow_query: Duration,
    /// Where the credentials came from, to read again when the server refuses them.
    secret: Option<Arc<crate::secrets::DatabaseSecret>>,
    /// Told the tenant of every service transaction, for the invocation's record.
    note_tenant: Option<fn(Uuid)>,
}

/// SQLSTATE 28P01 (invalid password) or 28000 (invalid authorization): the credentials
/// were rotated under a running container.
fn refused_credentials(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.code().is_some_and(|c| c.starts_with("28")))
}

/// What every application connection is opened with, whatever the credentials' source.
fn decorate(
    options: PgConnectOptions,
    application: &str,
    slow_query: Duration,
) -> PgConnectOptions {
    options
        .application_name(application)
        .log_statements(log::LevelFilter::Debug)
        .log_slow_statements(log::LevelFilter::Warn, slow_query)
}

impl Pool {
    /// A transaction outside any tenant: every tenant table reads empty in it. For the
    /// definer functions that find work across tenants and return ids only (DESIGN.md rule 7).
    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        self.begin_with("BEGIN").await
    }

    pub async fn begin_with(&self, statement: &'static str) -> Result<Tx, sqlx::Error> {
        // Boxed: sqlx's acquire future is large, and every future awaiting it inline grows
        // by as much.
        let tx = match Box::pin(self.pg.begin_with(statement)).await {
            // Boxed, as rare as it is: the secret's HTTP request would otherwise sit inline in
            // every transaction's future.
            Err(err) if refused_credentials(&err) && Box::pin(self.reread_credentials()).await => {
                Box::pin(self.pg.begin_with(statement)).await?
            }
            other => other?,
        };
        Ok(Tx {
            tx,
            named: self.pooler.named_statements(),
            note_tenant: self.note_tenant,
        })
    }

    /// Reads the credentials again from their secret and opens new connections with them;
    /// answers whether it could.
    async fn reread_credentials(&self) -> bool {
        let Some(secret) = &self.secret else {
            return false;
        };
        match secret.refresh().await {
            Ok(options) => {
                let options = decorate(options, &self.application, self.slow_query);
                self.pg
                    .set_connect_options(self.pooler.connect_options(options));
                tracing::warn!("database credentials refused; read them again from their secret");
                true
            }
            Err(err) => {
                tracing::error!(error = %err, "database credentials refused and not read again");
                false
            }
        }
    }

    pub fn pg(&self) -> &PgPool {
        &self.pg
    }
}

/// An open transaction on the application role's pool.
pub struct Tx {
    tx: Transaction<'static, Postgres>,
    named: bool,
    note_tenant: Option<fn(Uuid)>,
}

impl Tx {
    /// The connection, for running queries inside the transaction.
    pub fn conn(&mut self) -> Conn<'_> {
        Conn {
            inner: &mut self.tx,
            named: self.named,
        }
    }

    /// Enters `tenant` for the rest of this transaction, for Herald's own work in it (see
    /// [`Database::begin_service`]). The one place, with `app.enter_tenant`, that sets it.
    pub async fn enter_service(&mut self, tenant: Uuid) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT app.enter_service($1)")
            .bind(tenant)
            .execute(self.conn())
            .await?;
        if let Some(note) = self.note_tenant {
            note(tenant);
        }
        Ok(())
    }

    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }

    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        self.tx.rollback().await
    }
}

/// A transaction's connection as a query executor, preparing statements as its [`Pooler`]
/// allows. Cheap to make: take a new one with [`Tx::conn`] for every statement.
#[derive(Debug)]
pub struct Conn<'c> {
    inner: &'c mut PgConnection,
    named: bool,
}

impl<'c> Conn<'c> {
    /// The same connection again, for a function that runs several statements on it.
    pub fn reborrow(&mut self) -> Conn<'_> {
        Conn {
            inner: self.inner,
            named: self.named,
        }
    }
}

impl<'c> Executor<'c> for Conn<'c> {
    type Database = Postgres;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<PgQueryResult, PgRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        if self.named {
            self.inner.fetch_many(query)
        } else {
            self.inner.fetch_many(Unnamed(query))
        }
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<PgRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        if self.named {
            self.inner.fetch_optional(query)
        } else {
            self.inner.fetch_optional(Unnamed(query))
        }
    }

    fn prepare_with<'e>(
        self,
        sql: sqlx::SqlStr,
        parameters: &'e [sqlx::postgres::PgTypeInfo],
    ) -> BoxFuture<'e, Result<sqlx::postgres::PgStatement, sqlx::Error>>
    where
        'c: 'e,
    {
        self.inner.prepare_with(sql, parameters)
    }

    fn describe<'e>(
        self,
        sql: sqlx::SqlStr,
    ) -> BoxFuture<'e, Result<sqlx::Describe<Postgres>, sqlx::Error>>
    where
        'c: 'e,
    {
        self.inner.describe(sql)
    }
}

/// A query sent as the unnamed statement: parsed for this execution only, so it cannot
/// collide with, or be mistaken for, a statement another client prepared on the same server
/// connection behind a pooler.
struct Unnamed<E>(E);

impl<'q, E: Execute<'q, Postgres>> Execute<'q, Postgres> for Unnamed<E> {
    fn sql(self) -> sqlx::SqlStr {
        self.0.sql()
    }

    fn statement(&self) -> Option<&sqlx::postgres::PgStatement> {
        self.0.statement()
    }

    fn take_arguments(
        &mut self,
    ) -> Result<Option<sqlx::postgres::PgArguments>, sqlx::error::BoxDynError> {
        self.0.take_arguments()
    }

    fn persistent(&self) -> bool {
        false
    }
}

#[derive(Clone)]
pub struct Database {
    pool: Pool,
    /// Where `LISTEN` connects: straight to PostgreSQL even when the pool goes through a
    /// pooler, which would hand the session to other clients between transactions.
    listen: Arc<PgConnectOptions>,
}

impl Database {
    /// The same pool, reading its credentials again from `secret` when the server refuses
    /// them (a rotation).
    pub fn with_secret(mut self, secret: Option<Arc<crate::secrets::DatabaseSecret>>) -> Database {
        self.pool.secret = secret;
        self
    }

    /// The same pool, telling `note` the tenant of every service transaction (the
    /// invocation's record wants it; this layer knows nothing of invocations).
    pub fn noting_tenants_with(mut self, note: fn(Uuid)) -> Database {
        self.pool.note_tenant = Some(note);
        self
    }

    pub fn connect_lazy(
        url: &str,
        max_connections: u32,
        slow_query: Duration,
        application: &str,
    ) -> Result<Database, sqlx::Error> {
        Ok(Database::connect_lazy_with(
            PgConnectOptions::from_str(url)?,
            max_connections,
            slow_query,
            application,
        ))
    }

    /// How long a pooled connection may idle before it is checked on acquire.
    pub const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);

    pub fn connect_lazy_with(
        options: PgConnectOptions,
        max_connections: u32,
        slow_query: Duration,
        application: &str,
    ) -> Database {
        Database::connect_pooled(
            options,
            Pooler::None,
            max_connections,
            slow_query,
            application,
        )
    }

    /// A lazy pool whose connections go through `pooler`.
    pub fn connect_pooled(
        options: PgConnectOptions,
        pooler: Pooler,
        max_connections: u32,
        slow_query: Duration,
        application: &str,
    ) -> Database {
        let options = decorate(options, application, slow_query);
        let listen = Arc::new(options.clone());
        let pg = PgPoolOptions::new()
            .max_connections(max_connections)
            // Fail fast when the pool is exhausted or the server is gone: a 503 the client
            // can retry beats a request that hangs until API Gateway's 30 s timeout.
            .acquire_timeout(Duration::from_secs(3))
            // A connection that idled (a frozen Lambda container, a quiet server) may have
            // been closed by the server or a proxy: ping it first; one in steady use skips
            // the round trip.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for > Database::PING_IF_IDLE_FOR {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
            .connect_lazy_with(pooler.connect_options(options));
        let pool = Pool {
            pg,
            pooler,
            application: application.into(),
            slow_query,
            secret: None,
            note_tenant: None,
        };
        Database { pool, listen }
    }

    /// The same pool, listening through `options` (a direct connection when the pool's go
    /// through a pooler).
    pub fn with_listen_options(self, options: PgConnectOptions) -> Database {
        Database {
            listen: Arc::new(options),
            ..self
        }
    }

    /// The application role's pool, for work outside any tenant transaction (rollups,
    /// rate-limit counters).
    pub fn app_pool(&self) -> &Pool {
        &self.pool
    }

    /// Opens a transaction in `tenant` for `sub`. `None` when `sub` is not a member; the
    /// same answer for a tenant that does not exist, so nobody can probe for tenants.
    /// `request_id` names the transaction in `pg_stat_activity` (its `application_name`).
    pub async fn begin_tenant(
        &self,
        tenant: Uuid,
        sub: &str,
        request_id: &str,
    ) -> Result<Option<TenantTx>, sqlx::Error> {
        let tx = self.pool.begin().await?;
        enter_tenant(tx, tenant, sub, request_id, false).await
    }

    /// [`Database::begin_tenant`] for a request that only reads: `BEGIN READ ONLY`, so
    /// PostgreSQL refuses a write that slipped into a read route, and [`TenantTx::commit`]
    /// need not wait for anything (see there).
    pub async fn begin_tenant_read_only(
        &self,
        tenant: Uuid,
        sub: &str,
        request_id: &str,
    ) -> Result<Option<TenantTx>, sqlx::Error> {
        let tx = self.pool.begin_with("BEGIN READ ONLY").await?;
        enter_tenant(tx, tenant, sub, request_id, true).await
    }

    /// A transaction in `tenant` for work no caller asked for in this request: WebSocket
    /// connections after `$connect`, the dispatcher. The tenant must come from a stored
    /// record or a definer function (DESIGN.md rule 7), never from input.
    pub async fn begin_as(&self, tenant: Uuid, function: &str) -> Result<TenantTx, sqlx::Error> {
        self.begin_service(tenant, function).await
    }

    /// Opens a transaction for the API key whose hash is `hash`, in its tenant; `None` for
    /// an unknown, revoked or expired key (one answer for the three).
    pub async fn begin_api_key(
        &self,
        hash: &[u8],
        request_id: &str,
        read_only: bool,
    ) -> Result<Option<KeyEntry>, sqlx::Error> {
        let tx = if read_only {
            self.pool.begin_with("BEGIN READ ONLY").await?
        } else {
            self.pool.begin().await?
        };
        enter_api_key(tx, hash, request_id, read_only).await
    }

    /// Records that API key `id` was used (at most once a minute; see `app.touch_api_key`).
    pub async fn touch_api_key(&self, id: Uuid) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT app.touch_api_key($1)")
            .bind(id)
            .execute(tx.conn())
            .await?;
        tx.commit().await
    }

    /// A transaction outside any tenant (every tenant table reads empty in it), for the
    /// definer functions that find work across tenants and return ids only (DESIGN.md
    /// rule 7). Handlers go through [`Database::begin_tenant`].
    pub async fn begin_unscoped(&self) -> Result<Tx, sqlx::Error> {
        self.pool.begin().await
    }

    /// The application role's pool, for tests that look at its connections. Herald's own
    /// statements go through a transaction ([`Database::begin_unscoped`] and the rest).
    pub fn pool(&self) -> &PgPool {
        &self.pool.pg
    }

    /// A transaction in `tenant` for Herald's own background work (scheduler, sender,
    /// provider callbacks, webhook deliveries, the dispatcher), which acts for no member.
    /// The tenant must come from a definer function's answer or a verified callback, never
    /// from a caller's say-so alone.
    pub async fn begin_service(
        &self,
        tenant: Uuid,
        function: &str,
    ) -> Result<TenantTx, sqlx::Error> {
        let tx = self.pool.begin().await?;
        TenantTx::service(tx, tenant, function).await
    }

    /// A `LISTEN` on `channel` over a connection of its own, outside the request pool (a
    /// listener keeps its connection for as long as it lives) and straight to PostgreSQL.
    pub async fn listen(&self, channel: &str) -> Result<PgListener, sqlx::Error> {
        let own = PgPoolOptions::new()
            .max_connections(1)
            .connect_lazy_with((*self.listen).clone());
        let mut listener = PgListener::connect_with(&own).await?;
        listener.listen(channel).await?;
        Ok(listener)
    }

    /// Whether the database answers (for `/health`). Touches no tenant table; a simple
    /// query, so it needs no transaction behind a pooler.
    pub async fn ping(&self) -> bool {
        sqlx::raw_sql("SELECT 1")
            .execute(&self.pool.pg)
            .await
            .is_ok()
    }

    /// Creates tenant `id` named `name` with `owner` as its first owner (`POST
    /// /api/tenants`), through the `app.create_tenant` definer function: the app role may
    /// not insert tenants itself. Rows have `id, name, role, created_at`.
    pub async fn create_tenant<T>(
        &self,
        id: Uuid,
        name: &str,
        owner: &str,
    ) -> Result<T, sqlx::Error>
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
    {
        let mut tx = self.begin_unscoped().await?;
        let row = sqlx::query_as(
            "SELECT id, name, 'owner' AS role, created_at FROM app.create_tenant($1, $2, $3)",
        )
        .bind(id)
        .bind(name)
        .bind(owner)
        .fetch_one(tx.conn())
        .await?;
        tx.commit().await?;
        Ok(row)
    }

    /// The tenants `sub` is a member of, with its role in each, oldest first (`GET
    /// /api/tenants`), through the `app.tenants_of` definer function: the one read across
    /// tenants a caller may make. Rows have `id, name, role, created_at`.
    pub async fn tenants_of<T>(&self, sub: &str) -> Result<Vec<T>, sqlx::Error>
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
    {
        let mut tx = self.pool.begin_with("BEGIN READ ONLY").await?;
        let rows = sqlx::query_as("SELECT id, name, role, created_at FROM app.tenants_of($1)")
            .bind(sub)
            .fetch_all(tx.conn())
            .await?;
        tx.commit().await?;
        Ok(rows)
    }
}

/// Enters `tenant` as `sub`, named `request_id`, in one round trip; `None` (and rolled
/// back) when `sub` is not a member.
async fn enter_tenant(
    mut tx: Tx,
    tenant: Uuid,
    sub: &str,
    request_id: &str,
    read_only: bool,
) -> Result<Option<TenantTx>, sqlx::Error> {
    let role: Option<String> = sqlx::query_scalar("SELECT app.enter_tenant($1, $2, $3)")
        .bind(tenant)
        .bind(sub)
        .bind(request_id)
        .fetch_one(tx.conn())
        .await?;
    let Some(role) = role.and_then(|r| r.parse::<Role>().ok()) else {
        tx.rollback().await?;
        return Ok(None);
    };
    let actor = Actor::User {
        sub: sub.to_owned(),
    };
    Ok(Some(TenantTx {
        tx,
        tenant,
        role,
        actor,
        read_only,
        deferred: None,
    }))
}

/// An API key's way in (`app.enter_api_key`): its transaction, in the key's tenant with the
/// key's role, and whether its last use should be recorded ([`Database::touch_api_key`]).
pub struct KeyEntry {
    pub tx: TenantTx,
    pub stale: bool,
}

#[derive(sqlx::FromRow)]
struct KeyRow {
    key_id: Uuid,
    tenant_id: Uuid,
    role: String,
    stale: bool,
}

async fn enter_api_key(
    mut tx: Tx,
    hash: &[u8],
    request_id: &str,
    read_only: bool,
) -> Result<Option<KeyEntry>, sqlx::Error> {
    let row: Option<KeyRow> =
        sqlx::query_as("SELECT key_id, tenant_id, role, stale FROM app.enter_api_key($1, $2)")
            .bind(hash)
            .bind(request_id)
            .fetch_optional(tx.conn())
            .await?;
    let Some((row, role)) = row.and_then(|r| r.role.parse::<Role>().ok().map(|role| (r, role)))
    else {
        tx.rollback().await?;
        return Ok(None);
    };
    let tx = TenantTx {
        tx,
        tenant: row.tenant_id,
        role,
        actor: Actor::ApiKey { id: row.key_id },
        read_only,
        deferred: None,
    };
    Ok(Some(KeyEntry {
        tx,
        stale: row.stale,
    }))
}

/// Where a request's first write transaction waits for the request's response instead of
/// committing, so that whoever holds it (the `Idempotency-Key` of [`crate::idempotency`])
/// can store the response in that same transaction before it commits.
#[derive(Clone, Default)]
pub struct Deferred(Arc<std::sync::Mutex<Option<TenantTx>>>);

impl Deferred {
    /// The transaction that was committed into this slot, if any.
    pub fn take(&self) -> Option<TenantTx> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// A transaction bound to one tenant, and one caller's role in it and identity.
pub struct TenantTx {
    tx: Tx,
    tenant: Uuid,
    role: Role,
    /// Who the transaction acts for: what its events record.
    actor: Actor,
    /// Opened `READ ONLY` ([`Database::begin_tenant_read_only`]).
    read_only: bool,
    deferred: Option<Deferred>,
}

impl TenantTx {
    pub fn tenant(&self) -> Uuid {
        self.tenant
    }

    pub fn role(&self) -> Role {
        self.role
    }

    pub fn actor(&self) -> &Actor {
        &self.actor
    }

    /// Enters `tenant` in an open transaction for Herald's own background work (see
    /// [`Database::begin_service`]); e.g. after a definer function locked the row to work on.
    pub async fn service(
        mut tx: Tx,
        tenant: Uuid,
        function: &str,
    ) -> Result<TenantTx, sqlx::Error> {
        tx.enter_service(tenant).await?;
        Ok(TenantTx {
            tx,
            tenant,
            role: Role::Admin,
            actor: Actor::system(function),
            read_only: false,
            deferred: None,
        })
    }

    /// Makes [`TenantTx::commit`] hand this transaction to `slot` instead of committing,
    /// unless `slot` already holds one (only a request's first write waits).
    pub fn defer_commit_to(&mut self, slot: &Deferred) {
        self.deferred = Some(slot.clone());
    }

    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        self.tx.rollback().await
    }

    /// The connection, for running queries inside the transaction.
    pub fn conn(&mut self) -> Conn<'_> {
        self.tx.conn()
    }

    /// Commits, or hands the transaction to the slot it was deferred to.
    ///
    /// A read-only transaction has nothing to make durable, so the request does not wait for
    /// its end: dropping it queues a `ROLLBACK` on the connection, which the pool sends with
    /// the check it runs on every connection given back, after the response has left.
    pub async fn commit(mut self) -> Result<(), sqlx::Error> {
        if self.read_only {
            drop(self.tx);
            return Ok(());
        }
        if let Some(slot) = self.deferred.take() {
            let mut parked = slot.0.lock().unwrap_or_else(|e| e.into_inner());
            if parked.is_none() {
                *parked = Some(self);
                return Ok(());
            }
        }
        self.tx.commit().await
    }

    /// Commits for real, whatever it was deferred to.
    pub async fn commit_now(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }
}

/// One page of rows newest first by `id`, and their total when paging by offset.
///
/// `from` writes everything after the select list: `FROM … WHERE tenant_id = …` and the
/// list's filters. The page and the count are both built from it, so they always agree on
/// which rows there are.
pub async fn newest_first<T>(
    tx: &mut TenantTx,
    columns: &str,
    paging: Paging,
    from: impl Fn(&mut QueryBuilder<Postgres>),
) -> Result<(Vec<T>, Option<i64>), sqlx::Error>
where
    T: for<'r> FromRow<'r, PgRow> + Send + Unpin,
{
    let mut page = QueryBuilder::new(format!("SELECT {columns} "));
    from(&mut page);
    if let Some(cursor) = paging.cursor {
        page.push(" AND id < ").push_bind(cursor.id());
    }
    page.push(" ORDER BY id DESC LIMIT ")
        .push(paging.limit.fetch());
    if let Some(offset) = paging.offset {
        page.push(" OFFSET ").push_bind(i64::from(offset.get()));
    }
    let items = page.build_query_as().fetch_all(tx.conn()).await?;

    let total = match paging.offset {
        Some(_) => {
            let mut count = QueryBuilder::new("SELECT count(*) ");
            from(&mut count);
            Some(count.build_query_scalar().fetch_one(tx.conn()).await?)
        }
        None => None,
    };
    Ok((items, total))
}

/// The constraint a unique violation names, if `err` is one.
pub fn unique_violation(err: &sqlx::Error) -> Option<&str> {
    constraint_of(err, "23505")
}

/// The constraint a CHECK violation names, if `err` is one.
pub fn check_violation(err: &sqlx::Error) -> Option<&str> {
    constraint_of(err, "23514")
}

fn constraint_of<'a>(err: &'a sqlx::Error, code: &str) -> Option<&'a str> {
    match err {
        sqlx::Error::Database(db) if db.code().as_deref() == Some(code) => db.constraint(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poolers_are_named_as_deployments_name_them() {
        for (name, pooler) in [
            ("", Pooler::None),
            ("none", Pooler::None),
            ("transaction", Pooler::Transaction),
            ("PgBouncer", Pooler::Transaction),
            ("supavisor", Pooler::Transaction),
            ("rds-proxy", Pooler::RdsProxy),
            ("transaction-prepared", Pooler::RdsProxy),
        ] {
            assert_eq!(name.parse::<Pooler>(), Ok(pooler), "{name:?}");
        }
        let refused = "session".parse::<Pooler>().unwrap_err();
        assert!(refused.contains("transaction"), "{refused}");
    }

    #[test]
    fn only_a_pooler_that_does_not_track_them_gets_unnamed_statements() {
        assert!(Pooler::None.named_statements());
        assert!(Pooler::RdsProxy.named_statements());
        assert!(!Pooler::Transaction.named_statements());
    }
}
