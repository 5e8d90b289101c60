//! Webhook delivery. Every outbox event is fanned out by a trigger on `outbox_events` into
//! one `webhook_deliveries` row per subscribed webhook, in the writer's own transaction;
//! the deliverer here claims due rows ([`worker`]), sends each as a signed Standard Webhooks
//! request through the SSRF guard ([`deliver`]), logs the attempt and plans the next one
//! ([`record`], [`schedule`]).
//!
//! [`run_once`] is one round, for the dispatcher function; [`worker::run`] runs rounds for
//! as long as the process lives (herald-local).

pub mod deliver;
pub mod record;
pub mod schedule;
pub mod worker;

use std::time::Duration;

pub use schedule::Schedule;
pub use worker::{Round, run_once};

/// How the deliverer works. `Default` is production's.
#[derive(Clone, Debug)]
pub struct Options {
    pub schedule: Schedule,
    /// How long a claim holds a delivery. It must cover sending a batch while the other
    /// lanes share the permits: `lanes * batch / concurrency` waves of at most 15 s.
    pub lease: Duration,
    /// Deliveries claimed per tenant per lane, sent together and recorded together.
    pub batch: i64,
    /// Batches in flight at once.
    pub lanes: usize,
    /// Tenants served per round.
    pub tenants: i32,
    /// Attempts in flight at once.
    pub concurrency: usize,
    /// A webhook whose deliveries all fail for this long is disabled.
    pub disable_after: Duration,
    /// The longest [`worker::run`] waits without a notification.
    pub poll: Duration,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            schedule: Schedule::standard(),
            lease: Duration::from_secs(90),
            batch: 64,
            lanes: 2,
            tenants: 100,
            concurrency: 32,
            disable_after: Duration::from_secs(5 * 24 * 3600),
            poll: Duration::from_secs(5),
        }
    }
}
