//! Per-tenant rate limits: requests per calendar minute, counted locally, shared through
//! PostgreSQL.
//!
//! Each process decides from its own counters, so admitting a request costs a map lookup
//! under a mutex and no I/O: within one process the limit is exact. About once a second per
//! tenant, a background sync adds the process's new requests to the tenant's row in
//! `rate_minutes` and reads back the total of every instance, so across instances the limit
//! holds to within what each instance admits between two syncs. The limit is the tenant's
//! `rate_limit_per_minute`, else the configured default.
//!
//! The tenant's own limit is cached in the process too ([`Limiter::known_limit`]): each sync
//! reads it back with the counts, and a request reads it from `tenants` itself only when its
//! process has not seen the tenant for [`LIMIT_FRESH`], since reading it per request cost
//! PostgreSQL more than the list itself saves. A changed limit therefore reaches a busy
//! process with its next sync, about a second later.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::db::{Conn, Pool};
use uuid::Uuid;

/// How often each process shares its counts, at most, per tenant.
pub const SYNC_EVERY: Duration = Duration::from_secs(1);

/// How long a tenant's own limit, as last read, stands in for reading it again. Syncs renew
/// it every [`SYNC_EVERY`] while the tenant is busy; this bounds it when they fail.
pub const LIMIT_FRESH: Duration = Duration::from_secs(10);

/// A tenant's standing in the current window, as the `RateLimit-*` headers tell it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateState {
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the window (the calendar minute) ends.
    pub reset_secs: u32,
}

/// Whether a request may go ahead, and the standing after it.
#[derive(Clone, Copy, Debug)]
pub struct Admission {
    pub allowed: bool,
    pub state: RateState,
}

struct Window {
    minute: u64,
    /// Every instance's requests this minute, as of the last sync (ours included).
    shared: u64,
    /// Our requests not yet shared.
    pending: u64,
    last_sync: Option<Instant>,
    syncing: bool,
}

/// A tenant's counts to share.
pub struct SyncJob {
    pub tenant: Uuid,
    minute: u64,
    count: u64,
}

/// A tenant's own limit (`None`: the default applies) and when it was read.
struct KnownLimit {
    limit: Option<u32>,
    read_at: Instant,
}

#[derive(Default)]
pub struct Limiter {
    windows: Mutex<HashMap<Uuid, Window>>,
    limits: Mutex<HashMap<Uuid, KnownLimit>>,
}

impl Limiter {
    /// Counts one request of `tenant` against `limit` (refused requests do not count), and
    /// says whether it is time to share the counts.
    pub fn admit(&self, tenant: Uuid, limit: u32) -> (Admission, Option<SyncJob>) {
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let minute = since / 60;
        let reset_secs = (60 - since % 60) as u32;
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if windows.len() > 10_000 {
            windows.retain(|_, w| w.minute == minute);
        }
        let window = windows.entry(tenant).or_insert(Window {
            minute,
            shared: 0,
            pending: 0,
            last_sync: None,
            syncing: false,
        });
        if window.minute != minute {
            *window = Window {
                minute,
                shared: 0,
                pending: 0,
                last_sync: None,
                syncing: window.syncing,
            };
        }
        let used = window.shared + window.pending;
        let allowed = used < u64::from(limit);
        if allowed {
            window.pending += 1;
        }
        let remaining = u64::from(limit).saturating_sub(used + u64::from(allowed));
        let state = RateState {
            limit,
            remaining: u32::try_from(remaining).unwrap_or(u32::MAX),
            reset_secs,
        };
        let due = !window.syncing && window.last_sync.is_none_or(|t| t.elapsed() >= SYNC_EVERY);
        let job = (due && window.pending > 0).then(|| {
            window.syncing = true;
            window.last_sync = Some(Instant::now());
            SyncJob {
                tenant,
                minute,
                count: window.pending,
            }
        });
        (Admission { allowed, state }, job)
    }

    /// `tenant`'s own limit as last read (`Some(None)`: it has none), unless that was longer
    /// than [`LIMIT_FRESH`] ago or never.
    pub fn known_limit(&self, tenant: Uuid) -> Option<Option<u32>> {
        let limits = self.limits.lock().unwrap_or_else(|e| e.into_inner());
        limits
            .get(&tenant)
            .filter(|known| known.read_at.elapsed() < LIMIT_FRESH)
            .map(|known| known.limit)
    }

    /// Takes in `tenant`'s own limit, just read from `tenants`.
    pub fn learn_limit(&self, tenant: Uuid, limit: Option<u32>) {
        let mut limits = self.limits.lock().unwrap_or_else(|e| e.into_inner());
        if limits.len() > 10_000 {
            limits.retain(|_, known| known.read_at.elapsed() < LIMIT_FRESH);
        }
        let read_at = Instant::now();
        limits.insert(tenant, KnownLimit { limit, read_at });
    }

    /// Shares `job`'s counts and takes in every instance's total and the tenant's limit.
    pub async fn sync(&self, pool: &Pool, job: SyncJob) {
        let total = share(pool, &job).await;
        if let Ok((_, limit)) = total {
            self.learn_limit(job.tenant, limit);
        }
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let Some(window) = windows.get_mut(&job.tenant) else {
            return;
        };
        window.syncing = false;
        match total {
            Ok((total, _)) if window.minute == job.minute => {
                window.pending = window.pending.saturating_sub(job.count);
                window.shared = u64::try_from(total).unwrap_or(0);
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(tenant = %job.tenant, %error, "rate-limit counts not shared")
            }
        }
    }
}

/// Adds `job`'s count to the shared row; returns every instance's total and the tenant's own
/// limit.
async fn share(pool: &Pool, job: &SyncJob) -> Result<(i64, Option<u32>), sqlx::Error> {
    let minute = time::OffsetDateTime::from_unix_timestamp((job.minute * 60) as i64)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let mut tx = pool.begin().await?;
    tx.enter_service(job.tenant).await?;
    // Past minutes are of no more use: dropped in the same statement.
    let (total, limit): (i64, Option<i32>) = sqlx::query_as(
        "WITH gone AS (DELETE FROM rate_minutes WHERE tenant_id = $1 AND minute < $2)
         INSERT INTO rate_minutes (tenant_id, minute, requests) VALUES ($1, $2, $3)
         ON CONFLICT (tenant_id, minute)
         DO UPDATE SET requests = rate_minutes.requests + excluded.requests
         RETURNING requests, (SELECT rate_limit_per_minute FROM tenants WHERE id = $1)",
    )
    .bind(job.tenant)
    .bind(minute)
    .bind(i64::try_from(job.count).unwrap_or(i64::MAX))
    .fetch_one(tx.conn())
    .await?;
    tx.commit().await?;
    Ok((total, own_limit(limit)))
}

/// The tenant's own limit, read in a transaction that has entered it (for a request whose
/// process does not know it: see [`Limiter::known_limit`]).
pub async fn read_limit(conn: Conn<'_>, tenant: Uuid) -> Result<Option<u32>, sqlx::Error> {
    let limit: Option<i32> =
        sqlx::query_scalar("SELECT rate_limit_per_minute FROM tenants WHERE id = $1")
            .bind(tenant)
            .fetch_optional(conn)
            .await?
            .flatten();
    Ok(own_limit(limit))
}

/// The column is `integer CHECK (BETWEEN 1 AND 10000000)`.
fn own_limit(column: Option<i32>) -> Option<u32> {
    column.and_then(|n| u32::try_from(n).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenants_own_limit_is_known_once_read() {
        let limiter = Limiter::default();
        let (plain, custom) = (Uuid::now_v7(), Uuid::now_v7());
        assert_eq!(limiter.known_limit(plain), None);
        limiter.learn_limit(plain, None);
        limiter.learn_limit(custom, Some(3));
        assert_eq!(limiter.known_limit(plain), Some(None));
        assert_eq!(limiter.known_limit(custom), Some(Some(3)));
        limiter.learn_limit(custom, Some(5));
        assert_eq!(limiter.known_limit(custom), Some(Some(5)));
    }

    #[test]
    fn exact_within_one_process() {
        let limiter = Limiter::default();
        let tenant = Uuid::now_v7();
        let other = Uuid::now_v7();
        let allowed = (0..5)
            .filter(|_| limiter.admit(tenant, 3).0.allowed)
            .count();
        // Unless the minute turned meanwhile, exactly the limit got through.
        assert!((3..=5).contains(&allowed));
        let (refused, _) = limiter.admit(tenant, 3);
        if allowed == 3 {
            assert!(!refused.allowed);
            assert_eq!(refused.state.remaining, 0);
        }
        let (fine, _) = limiter.admit(other, 3);
        assert!(fine.allowed);
        assert_eq!(fine.state.remaining, 2);
        assert!((1..=60).contains(&fine.state.reset_secs));
    }
}
