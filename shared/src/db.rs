//! The database: a pool for the application role and the one way to reach tenant data.
//!
//! Handlers never see the pool. They get a [`TenantTx`]: a transaction whose tenant was set
//! with `set_config('app.tenant_id', …, true)` (transaction-local, so a pooled connection
//! never carries one caller's tenant to the next) and whose caller was found in
//! `tenant_members`. Row-level security does the rest, even for a query that forgets its
//! `WHERE tenant_id`.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions, PgRow};
use sqlx::{ConnectOptions, FromRow, PgConnection, PgPool, Postgres, QueryBuilder, Transaction};
use uuid::Uuid;

use crate::auth::Role;
use crate::domain::Paging;
use crate::observer::{Observer, ObserverConfig};

/// Herald's schema migrations, embedded in every binary that may run them.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

#[derive(Clone)]
pub struct Database {
    pool: PgPool,
    /// This process's rollups and rate limits for this database (see [`Observer`]).
    observer: Arc<Observer>,
}

impl Database {
    /// A pool that connects on first use, so a cold start does not wait on the database.
    /// What a function's `main` connects with: the configured URL, pool size, slow-query
    /// threshold and observer settings, named `application` in `pg_stat_activity`. Lazy, so
    /// the cold start does no network I/O.
    pub fn from_config(config: &crate::Config, application: &str) -> Result<Database, sqlx::Error> {
        Ok(Database::connect_lazy(
            &config.database_url,
            config.db_max_connections,
            config.slow_query,
            application,
        )?
        .with_observer(config.observer.clone()))
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
        let options = options
            .application_name(application)
            .log_statements(log::LevelFilter::Debug)
            .log_slow_statements(log::LevelFilter::Warn, slow_query);
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            // Fail fast when the pool is exhausted or the server is gone: a 503 the client
            // can retry beats a request that hangs until API Gateway's 30 s timeout.
            .acquire_timeout(Duration::from_secs(3))
            // A connection that idled (a Lambda container frozen between invocations, a quiet
            // server) may have been closed by the server or a proxy: ping it first. One in
            // steady use skips the ping, a round trip that would add a fifth to a read's four.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for > Database::PING_IF_IDLE_FOR {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
            .connect_lazy_with(options);
        let observer = Observer::new(pool.clone(), ObserverConfig::default());
        Database { pool, observer }
    }

    /// The same pool with observability settings of its own (flush interval, default rate
    /// limit, on or off).
    pub fn with_observer(self, config: ObserverConfig) -> Database {
        let observer = Observer::new(self.pool.clone(), config);
        Database { observer, ..self }
    }

    pub fn observer(&self) -> &Arc<Observer> {
        &self.observer
    }

    /// Opens a transaction in `tenant` for `sub`. `None` when `sub` is not a member; the
    /// same answer for a tenant that does not exist, so nobody can probe for tenants.
    pub async fn begin_tenant(
        &self,
        tenant: Uuid,
        sub: &str,
    ) -> Result<Option<TenantTx>, sqlx::Error> {
        let tx = Box::pin(self.pool.begin()).await?;
        self.enter_tenant(tx, tenant, sub, false).await
    }

    /// [`Database::begin_tenant`] for a request that only reads: `BEGIN READ ONLY`, so
    /// PostgreSQL refuses a write that slipped into a read route, and [`TenantTx::commit`]
    /// need not wait for anything (see there).
    pub async fn begin_tenant_read_only(
        &self,
        tenant: Uuid,
        sub: &str,
    ) -> Result<Option<TenantTx>, sqlx::Error> {
        // Boxed: sqlx's acquire future is about 14 KB (it holds a whole connection attempt),
        // and every future that awaits it inline grows by as much, handler and request
        // future alike, each copied whole when it is boxed or spawned.
        let tx = Box::pin(self.pool.begin_with("BEGIN READ ONLY")).await?;
        self.enter_tenant(tx, tenant, sub, true).await
    }

    async fn enter_tenant(
        &self,
        mut tx: Transaction<'static, Postgres>,
        tenant: Uuid,
        sub: &str,
        read_only: bool,
    ) -> Result<Option<TenantTx>, sqlx::Error> {
        // The request id becomes the transaction's application_name, in the same round trip.
        let role: Option<String> = sqlx::query_scalar("SELECT app.enter_tenant($1, $2, $3)")
            .bind(tenant)
            .bind(sub)
            .bind(crate::metrics::request_id())
            .fetch_one(&mut *tx)
            .await?;
        let Some(role) = role.and_then(|r| r.parse::<Role>().ok()) else {
            tx.rollback().await?;
            return Ok(None);
        };
        // Read only once membership is proven, and only when this process does not know it.
        let rate_limit = match self.observer.known_limit(tenant) {
            Some(known) => known,
            None => {
                let limit = crate::ratelimit::read_limit(&mut tx, tenant).await?;
                self.observer.learn_limit(tenant, limit);
                limit
            }
        };
        crate::metrics::enter_tenant(tenant, &self.observer);
        Ok(Some(TenantTx {
            tx,
            tenant,
            role,
            rate_limit,
            read_only,
        }))
    }

    /// A transaction in `tenant` for work no caller asked for in this request: WebSocket
    /// connections after `$connect`, the dispatcher. The tenant must come from a stored
    /// record or a definer function (DESIGN.md rule 7), never from input.
    pub async fn begin_as(
        &self,
        tenant: Uuid,
    ) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        Ok(self.begin_service(tenant).await?.tx)
    }

    /// The pool with no tenant set (every tenant table reads empty through it), for the
    /// definer functions that find work across tenants and return ids only (DESIGN.md
    /// rule 7), and for `LISTEN`. Handlers go through [`Database::begin_tenant`].
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// A transaction in `tenant` for Herald's own background work (scheduler, sender,
    /// provider callbacks, webhook deliveries, the dispatcher), which acts for no member. The tenant must come from a definer
    /// function's answer or a verified callback, never from a caller's say-so alone.
    pub async fn begin_service(&self, tenant: Uuid) -> Result<TenantTx, sqlx::Error> {
        let tx = Box::pin(self.pool.begin()).await?;
        TenantTx::service(tx, tenant).await
    }

    /// A `LISTEN` on `channel` over a connection of its own, outside the request pool: a
    /// listener keeps its connection for as long as it lives, and one taken from the pool
    /// would leave requests a connection short for good (herald-local runs two beside its
    /// routes, which with its default pool of 4 left requests 2).
    pub async fn listen(&self, channel: &str) -> Result<PgListener, sqlx::Error> {
        let own = PgPoolOptions::new()
            .max_connections(1)
            .connect_lazy_with((*self.pool.connect_options()).clone());
        let mut listener = PgListener::connect_with(&own).await?;
        listener.listen(channel).await?;
        Ok(listener)
    }

    /// Whether the database answers (for `/health`). Touches no tenant table.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
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
        sqlx::query_as(
            "SELECT id, name, 'owner' AS role, created_at FROM app.create_tenant($1, $2, $3)",
        )
        .bind(id)
        .bind(name)
        .bind(owner)
        .fetch_one(&self.pool)
        .await
    }

    /// The tenants `sub` is a member of, with its role in each, oldest first (`GET
    /// /api/tenants`), through the `app.tenants_of` definer function: the one read across
    /// tenants a caller may make. Rows have `id, name, role, created_at`.
    pub async fn tenants_of<T>(&self, sub: &str) -> Result<Vec<T>, sqlx::Error>
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
    {
        sqlx::query_as("SELECT id, name, role, created_at FROM app.tenants_of($1)")
            .bind(sub)
            .fetch_all(&self.pool)
            .await
    }
}

/// A transaction bound to one tenant and one caller's role in it.
pub struct TenantTx {
    tx: Transaction<'static, Postgres>,
    tenant: Uuid,
    role: Role,
    /// The tenant's own requests-per-minute limit, if it has one.
    rate_limit: Option<u32>,
    /// Opened `READ ONLY` ([`Database::begin_tenant_read_only`]).
    read_only: bool,
}

impl TenantTx {
    pub fn tenant(&self) -> Uuid {
        self.tenant
    }

    pub fn role(&self) -> Role {
        self.role
    }

    pub fn rate_limit(&self) -> Option<u32> {
        self.rate_limit
    }

    /// Enters `tenant` in an open transaction for Herald's own background work (see
    /// [`Database::begin_service`]); e.g. after a definer function locked the row to work on.
    pub async fn service(
        mut tx: Transaction<'static, Postgres>,
        tenant: Uuid,
    ) -> Result<TenantTx, sqlx::Error> {
        sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
            .bind(tenant.to_string())
            .execute(&mut *tx)
            .await?;
        crate::metrics::note_tenant(tenant);
        Ok(TenantTx {
            tx,
            tenant,
            role: Role::Admin,
            rate_limit: None,
            read_only: false,
        })
    }

    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        self.tx.rollback().await
    }

    /// The connection, for running queries inside the transaction.
    pub fn conn(&mut self) -> &mut PgConnection {
        &mut self.tx
    }

    /// Commits; a request holding an `Idempotency-Key` in this tenant marks it committed in
    /// the same transaction (see [`crate::idempotency`]).
    ///
    /// A read-only transaction has nothing to make durable, so the request does not wait for
    /// its end: dropping it queues a `ROLLBACK` on the connection, and the pool sends that
    /// in the same write as the check it runs on every connection given back, after the
    /// response has left. A `COMMIT` would cost every read a round trip of its own. Nor is
    /// there an `Idempotency-Key` to mark (a read-only transaction could not write the mark
    /// anyway): a keyed read (template preview) that is retried after a crash simply runs
    /// again, which changes nothing.
    pub async fn commit(mut self) -> Result<(), sqlx::Error> {
        if self.read_only {
            drop(self.tx);
            return Ok(());
        }
        crate::idempotency::mark_committed(&mut self.tx, self.tenant).await?;
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
