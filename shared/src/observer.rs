//! One process's observability state for one database: the rollup collector, the rate
//! limiter and their settings, shared by every function the process serves.
//!
//! `Database` owns it, so two servers in one process (tests) keep separate counts, as two
//! Lambda containers would. Writes happen off the request path: flushes and rate-limit
//! syncs run on spawned tasks, at most every `flush_every` (rollups) or every second
//! (rate counts), plus [`Observer::flush`] at shutdown.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use crate::db::Pool;
use uuid::Uuid;

use crate::ratelimit::{Admission, Limiter};
use crate::rollup::{self, Collector, Sample};

/// Requests per minute per tenant when neither the tenant nor the environment says.
pub const DEFAULT_RATE_LIMIT_PER_MINUTE: u32 = 6000;

#[derive(Clone, Debug)]
pub struct ObserverConfig {
    /// False turns off EMF lines, rollups and rate limits (benchmarks compare both ways).
    pub enabled: bool,
    /// Rollups are written at most this often (`HERALD_STATS_FLUSH_SECS`, default 10).
    pub flush_every: Duration,
    /// Default requests per minute per tenant (`HERALD_RATE_LIMIT_PER_MINUTE`).
    pub rate_limit_per_minute: u32,
    /// Slow queries kept per tenant.
    pub slow_query_cap: i64,
}

impl Default for ObserverConfig {
    fn default() -> Self {
        ObserverConfig {
            enabled: true,
            flush_every: Duration::from_secs(10),
            rate_limit_per_minute: DEFAULT_RATE_LIMIT_PER_MINUTE,
            slow_query_cap: 100,
        }
    }
}

pub struct Observer {
    config: ObserverConfig,
    pool: Pool,
    collector: Collector,
    limiter: Limiter,
    last_flush: Mutex<Instant>,
    flushing: AtomicBool,
}

impl Observer {
    pub fn new(pool: Pool, config: ObserverConfig) -> Arc<Observer> {
        Arc::new(Observer {
            config,
            pool,
            collector: Collector::default(),
            limiter: Limiter::default(),
            last_flush: Mutex::new(Instant::now()),
            flushing: AtomicBool::new(false),
        })
    }

    pub fn config(&self) -> &ObserverConfig {
        &self.config
    }

    pub fn enabled(&self) -> bool {
        self.config.enabled
    }

    /// Adds a finished invocation to the rollups; starts a flush when one is due.
    pub fn record(self: &Arc<Self>, sample: Sample) {
        if !self.enabled() {
            return;
        }
        self.collector.add(sample);
        self.flush_if_due();
    }

    /// Starts a flush on a task of its own if the last one is `flush_every` old (or the
    /// collector holds many tenants) and none is running.
    pub fn flush_if_due(self: &Arc<Self>) {
        let due = self
            .last_flush
            .lock()
            .map(|t| t.elapsed() >= self.config.flush_every)
            .unwrap_or(true)
            || self.collector.tenants_pending() > 1000;
        if due && !self.flushing.swap(true, Ordering::AcqRel) {
            let me = Arc::clone(self);
            tokio::spawn(async move {
                me.write().await;
                me.flushing.store(false, Ordering::Release);
            });
        }
    }

    /// Writes every collected rollup now (shutdown, the stats endpoint, tests).
    pub async fn flush(&self) {
        self.write().await;
    }

    /// Writes the rollups collected for `tx`'s tenant inside `tx` (the stats endpoint).
    pub async fn flush_into(&self, tx: &mut crate::db::TenantTx) -> Result<(), sqlx::Error> {
        rollup::flush_tenant(&self.collector, tx, self.config.slow_query_cap).await
    }

    async fn write(&self) {
        if let Ok(mut t) = self.last_flush.lock() {
            *t = Instant::now();
        }
        rollup::flush(&self.collector, &self.pool, self.config.slow_query_cap).await;
    }

    /// Flushes every `flush_every` while the process lives, for servers that may sit idle
    /// with rollups pending (herald-local). Lambda flushes after invocations and at shutdown.
    pub fn spawn_ticker(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let weak: Weak<Observer> = Arc::downgrade(self);
        let every = self.config.flush_every;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(me) = weak.upgrade() else { return };
                me.flush_if_due();
            }
        })
    }

    /// `tenant`'s own limit if this process knows it (see [`Limiter::known_limit`]). With
    /// limits off nothing needs it, so it counts as known.
    pub fn known_limit(&self, tenant: Uuid) -> Option<Option<u32>> {
        if !self.enabled() {
            return Some(None);
        }
        self.limiter.known_limit(tenant)
    }

    /// Takes in `tenant`'s own limit, just read.
    pub fn learn_limit(&self, tenant: Uuid, limit: Option<u32>) {
        self.limiter.learn_limit(tenant, limit);
    }

    /// Counts one request of `tenant` against its limit (`tenant_limit`, else the default).
    /// `None` when limits are off.
    pub fn admit(self: &Arc<Self>, tenant: Uuid, tenant_limit: Option<u32>) -> Option<Admission> {
        if !self.enabled() {
            return None;
        }
        let limit = tenant_limit.unwrap_or(self.config.rate_limit_per_minute);
        let (admission, job) = self.limiter.admit(tenant, limit);
        if let Some(job) = job {
            let me = Arc::clone(self);
            tokio::spawn(async move { me.limiter.sync(&me.pool, job).await });
        }
        Some(admission)
    }
}
