//! The campaign engine: what happens after `start`.
//!
//! ```text
//! start / scheduler ──▶ campaign running ──▶ materialize: recipients become queued
//!                                              messages, in keyset batches over the group
//! sender: claim a batch (FOR UPDATE SKIP LOCKED, under a lease) ──▶ render ──▶ provider
//!         ──▶ record outcomes, counters, progress; complete when nothing is left
//! ```
//!
//! Exactly once: a campaign's messages are unique per (campaign, contact), so however often
//! materialisation runs or resumes, each recipient has one message, whose id is the
//! provider's idempotency key. A sender that dies leaves its claimed messages `sending`
//! under a lease; when the lease ends another sender takes them again (same ids).
//!
//! Work across tenants is found through the definer functions of migration
//! `20261125300000_campaign_engine.sql`, which return ids only; each piece then runs in a
//! transaction under its tenant's context ([`crate::db::Database::begin_service`]).

pub mod invocation;
pub mod materialize;
pub mod queue;
pub mod scheduler;
pub mod sender;

use std::time::Duration;

use crate::db::TenantTx;

/// The channel `LISTEN`ed to by herald-local's sender loop.
pub const WAKE_CHANNEL: &str = "herald_sender";

/// Names the sender function for the writers that kick it in AWS ([`crate::kick`]).
pub const SENDER_FUNCTION_VAR: &str = "HERALD_SENDER_FUNCTION";

/// Tells a listening sender that there is work (delivered when `tx` commits). In AWS the
/// sender is kicked instead: by `app::run` after a route that [wakes the sender](crate::api::Route::wakes_sender), by the scheduler
/// function after it started campaigns.
pub async fn wake(tx: &mut TenantTx) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_notify('herald_sender', '')")
        .execute(tx.conn())
        .await?;
    Ok(())
}

/// The sender's knobs.
#[derive(Clone, Debug)]
pub struct Tuning {
    /// Contacts per materialisation transaction.
    pub materialize_batch: i64,
    /// Messages per claim.
    pub claim_batch: i64,
    /// Provider calls in flight at once per batch.
    pub concurrency: usize,
    /// Batches of one tenant in flight at once in one sender.
    pub pipelines: usize,
    /// How long a claimed message belongs to its sender.
    pub lease: Duration,
    /// Attempts before a transiently failing message fails for good.
    pub max_attempts: i32,
    /// First retry delay; doubled per attempt, at most a minute.
    pub backoff: Duration,
}

impl Default for Tuning {
    fn default() -> Tuning {
        Tuning {
            materialize_batch: 20_000,
            claim_batch: 200,
            concurrency: 32,
            pipelines: 4,
            lease: Duration::from_secs(60),
            max_attempts: 5,
            backoff: Duration::from_secs(1),
        }
    }
}

impl Tuning {
    pub fn backoff_after(&self, attempts: i32) -> Duration {
        let factor = 1u32 << attempts.clamp(1, 7).saturating_sub(1);
        (self.backoff * factor).min(Duration::from_secs(60))
    }
}

/// Campaigns with at most this many recipients also announce each message's status change;
/// larger ones announce `campaign_progress` (at most once a second) instead.
pub const PER_MESSAGE_EVENTS_UP_TO: i32 = 100;
