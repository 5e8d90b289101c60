//! The sender: materialises started campaigns, then claims queued messages tenant by
//! tenant, renders them, hands them to the tenant's provider and records the outcomes.
//!
//! [`Sender::run_once`] is one invocation's work (the `sender` Lambda function; herald-local
//! calls it whenever it is woken, and on a slow poll). Its claim and record transactions
//! are short: no transaction stays open across provider calls.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use uuid::Uuid;

use super::Tuning;
use super::materialize::{self, Step};
use super::queue::{self, Claimed, Outcome, Recipient};
use crate::db::Database;
use crate::db::StoreError;

/// The actor its events record.
const SYSTEM: &str = "sender";
use crate::messages::Channel;
use crate::providers::{
    Delivery, Outbound, Outgoing, Provider, ProviderConfig, store as providers,
};
use crate::templates::Channel as TemplateChannel;
use crate::templates::render::{Compiled, ContactVars, RenderContext};

/// Attempts at one claim or one recording (see [`retrying`]).
const ATTEMPTS: u32 = 3;

/// Runs a transaction again when it failed. Senders (and one sender's pipelines) claiming
/// and recording at once can deadlock in PostgreSQL, which then aborts one of them; each
/// transaction here changes only rows still in the state it expects, so running it again
/// after an abort applies it exactly once.
async fn retrying<T, F, Fut>(tenant: Uuid, what: &str, mut run: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let mut attempt = 1;
    loop {
        match run().await {
            Ok(done) => return Ok(done),
            Err(err) if attempt < ATTEMPTS => {
                tracing::warn!(%tenant, attempt, error = %err.report(), "{what} failed; retrying");
                attempt += 1;
            }
            Err(err) => return Err(err),
        }
    }
}

/// What one invocation did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    pub queued: i64,
    pub claimed: usize,
    pub sent: usize,
    pub failed: usize,
    pub retried: usize,
}

impl Report {
    fn count(&mut self, outcomes: &[(Claimed, Outcome)]) {
        for (_, o) in outcomes {
            match o {
                Outcome::Sent { .. } => self.sent += 1,
                Outcome::Failed { .. } => self.failed += 1,
                Outcome::Retry { .. } => self.retried += 1,
                Outcome::Cancelled { .. } => {}
            }
        }
    }

    fn add(&mut self, other: &Report) {
        self.queued += other.queued;
        self.claimed += other.claimed;
        self.sent += other.sent;
        self.failed += other.failed;
        self.retried += other.retried;
    }
}

pub struct Sender {
    db: Database,
    outbound: Outbound,
    tuning: Tuning,
    /// The provider of tenants that configured none: `log` under herald-local, none in AWS.
    default_log: bool,
    /// Compiled templates per campaign, compiled once per campaign and process.
    compiled: Mutex<HashMap<Uuid, Arc<Option<Compiled>>>>,
    /// Per-tenant rate limiting: when each tenant may send its next message.
    next_slot: Mutex<HashMap<Uuid, Instant>>,
}

impl Sender {
    pub fn new(db: Database, outbound: Outbound, tuning: Tuning, default_log: bool) -> Sender {
        Sender {
            db,
            outbound,
            tuning,
            default_log,
            compiled: Mutex::default(),
            next_slot: Mutex::default(),
        }
    }

    /// Works until nothing is left to do or `budget` has passed (one Lambda invocation keeps
    /// well inside its 15 minutes; what remains is the next invocation's).
    pub async fn run_once(&self, budget: Duration) -> Result<Report, StoreError> {
        let deadline = Instant::now() + budget;
        let mut report = Report::default();
        loop {
            let mut busy = false;
            let mut tx = self.db.begin_unscoped().await?;
            let pending: Vec<(Uuid, Uuid)> =
                sqlx::query_as("SELECT tenant_id, id FROM app.campaigns_to_materialize(16)")
                    .fetch_all(tx.conn())
                    .await?;
            tx.commit().await?;
            for (tenant, campaign) in pending {
                while Instant::now() < deadline {
                    let mut tx = self.db.begin_service(tenant, SYSTEM).await?;
                    let step =
                        materialize::step(&mut tx, campaign, self.tuning.materialize_batch).await?;
                    tx.commit().await?;
                    busy = true;
                    match step {
                        Step::More { queued } => report.queued += queued,
                        Step::Done => break,
                    }
                }
            }
            let mut tx = self.db.begin_unscoped().await?;
            let tenants: Vec<Uuid> =
                sqlx::query_scalar("SELECT tenant_id FROM app.tenants_with_pending_messages(1000)")
                    .fetch_all(tx.conn())
                    .await?;
            tx.commit().await?;
            for tenant in tenants {
                if Instant::now() >= deadline {
                    break;
                }
                // Several batches of one tenant in flight: while one waits on its provider
                // calls, another claims or records. SKIP LOCKED keeps them apart.
                let lanes = (0..self.tuning.pipelines.max(1)).map(|_| self.drain(tenant, deadline));
                for lane in futures_util::future::join_all(lanes).await {
                    let lane = lane?;
                    busy |= lane.claimed > 0;
                    report.add(&lane);
                }
            }
            if !busy || Instant::now() >= deadline {
                return Ok(report);
            }
        }
    }

    /// Sends `tenant`'s batches one after another until none is left, a batch fails, or the
    /// deadline passes.
    async fn drain(&self, tenant: Uuid, deadline: Instant) -> Result<Report, StoreError> {
        let mut report = Report::default();
        while Instant::now() < deadline {
            if self.send_batch(tenant, &mut report).await? == 0 {
                break;
            }
        }
        Ok(report)
    }

    async fn provider_config(&self, tenant: Uuid) -> Result<Option<ProviderConfig>, StoreError> {
        let mut tx = self.db.begin_service(tenant, SYSTEM).await?;
        let config = providers::get(&mut tx).await?;
        tx.commit().await?;
        Ok(config.or_else(|| {
            self.default_log
                .then(|| ProviderConfig::default_log(tenant))
        }))
    }

    /// One batch of one tenant: claim, render, send, record. Returns how many were claimed.
    async fn send_batch(&self, tenant: Uuid, report: &mut Report) -> Result<usize, StoreError> {
        let Some(config) = self.provider_config(tenant).await? else {
            tracing::warn!(tenant_id = %tenant, "messages wait: the tenant has no delivery provider");
            return Ok(0);
        };
        let limit = self.claim_limit(&config);
        let prepared = retrying(tenant, "claiming a batch", || self.claim(tenant, limit)).await?;
        if prepared.is_empty() {
            return Ok(0);
        }
        report.claimed += prepared.len();

        let provider = self.outbound.provider(&config);
        let interval = config
            .messages_per_second
            .map(|r| Duration::from_secs_f64(1.0 / f64::from(r)));
        let slots: Vec<Option<Instant>> = prepared
            .iter()
            .map(|_| interval.map(|i| self.slot(tenant, i)))
            .collect();
        let mut outcomes: Vec<(Claimed, Outcome)> =
            futures_util::stream::iter(prepared.into_iter().zip(slots))
                .map(|((m, p), slot)| self.deliver(provider.as_ref(), m, p, slot))
                .buffer_unordered(self.tuning.concurrency)
                .collect()
                .await;
        report.count(&outcomes);
        outcomes.sort_by_key(|(m, _)| m.id);
        retrying(tenant, "recording a batch", || async {
            let mut tx = self.db.begin_service(tenant, SYSTEM).await?;
            queue::record(&mut tx, &outcomes, config.max_consecutive_failures).await?;
            tx.commit().await.map_err(StoreError::from)
        })
        .await?;
        Ok(outcomes.len())
    }

    /// A batch no larger than the provider's rate lets go out well within the lease.
    fn claim_limit(&self, config: &ProviderConfig) -> i64 {
        match config.messages_per_second {
            Some(rate) => {
                let fits = (f64::from(rate) * self.tuning.lease.as_secs_f64() / 2.0) as i64;
                self.tuning.claim_batch.min(fits.max(1))
            }
            None => self.tuning.claim_batch,
        }
    }

    /// Hands one prepared message to the provider at its slot (skipped ones are not sent).
    async fn deliver(
        &self,
        provider: &dyn Provider,
        m: Claimed,
        prepared: Prepared,
        slot: Option<Instant>,
    ) -> (Claimed, Outcome) {
        let out = match prepared {
            Prepared::Skip(outcome) => return (m, outcome),
            Prepared::Send(out) => out,
        };
        if let Some(at) = slot {
            tokio::time::sleep_until(at.into()).await;
        }
        let delivery = provider.send(&out).await;
        let outcome = self.outcome(&m, out, delivery);
        (m, outcome)
    }

    /// What a provider's answer makes of the attempt: transient errors retry with backoff
    /// until the attempts run out.
    fn outcome(&self, m: &Claimed, out: Outgoing, delivery: Delivery) -> Outcome {
        let failed = |error, opted_out| Outcome::Failed { error, opted_out };
        match delivery {
            Delivery::Sent { provider_id } => Outcome::Sent {
                provider_id,
                body: (m.body.as_deref() != Some(out.body.as_str())).then_some(out.body),
            },
            Delivery::Permanent(error) => failed(error, false),
            Delivery::OptedOut(error) => failed(error, true),
            Delivery::Transient(error) if m.attempts >= self.tuning.max_attempts => {
                failed(format!("{error} (after {} attempts)", m.attempts), false)
            }
            Delivery::Transient(error) => Outcome::Retry {
                error,
                after: self.tuning.backoff_after(m.attempts),
            },
        }
    }

    /// Claims up to `limit` of `tenant`'s due messages and renders them, in one transaction.
    /// Rendered bodies are stored with the outcome ([`queue::record`]), not here: a second
    /// update of a row claimed in the same transaction would re-check its campaign foreign
    /// key, waiting on a recorder that holds the campaign, a deadlock with two pipelines.
    async fn claim(
        &self,
        tenant: Uuid,
        limit: i64,
    ) -> Result<Vec<(Claimed, Prepared)>, StoreError> {
        let mut tx = self.db.begin_service(tenant, SYSTEM).await?;
        queue::sweep_cancelled(&mut tx).await?;
        let claimed = queue::claim(&mut tx, limit, self.tuning.lease).await?;
        if claimed.is_empty() {
            tx.commit().await?;
            return Ok(Vec::new());
        }
        let prepared = self.prepare(&mut tx, &claimed).await?;
        tx.commit().await?;
        Ok(prepared)
    }

    /// The next send slot of a rate-limited tenant.
    fn slot(&self, tenant: Uuid, interval: Duration) -> Instant {
        let mut slots = self.next_slot.lock().expect("not poisoned");
        let now = Instant::now();
        let next = slots.entry(tenant).or_insert(now);
        let at = (*next).max(now);
        *next = at + interval;
        at
    }

    /// Renders each claimed campaign message for its contact (direct messages carry their
    /// body); a message whose contact has gone is not sent.
    async fn prepare(
        &self,
        tx: &mut crate::db::TenantTx,
        claimed: &[Claimed],
    ) -> Result<Vec<(Claimed, Prepared)>, StoreError> {
        let tenant = tx.tenant();
        let contact_ids: Vec<Uuid> = claimed.iter().map(|m| m.contact_id).collect();
        let contacts = queue::recipients(tx, &contact_ids).await?;
        let mut campaign_ids: Vec<Uuid> = claimed.iter().filter_map(|m| m.campaign_id).collect();
        campaign_ids.sort();
        campaign_ids.dedup();
        let mut names = HashMap::new();
        let mut missing = Vec::new();
        {
            let cache = self.compiled.lock().expect("not poisoned");
            for id in &campaign_ids {
                if !cache.contains_key(id) {
                    missing.push(*id);
                }
            }
        }
        for t in queue::templates(tx, &campaign_ids).await? {
            names.insert(t.id, t.name.clone());
            if missing.contains(&t.id) {
                let channel = match t.channel.as_deref() {
                    Some("email") => TemplateChannel::Email,
                    _ => TemplateChannel::Sms,
                };
                let compiled = t.body_source.as_deref().and_then(|body| {
                    Compiled::new(channel, t.subject_source.as_deref(), body).ok()
                });
                self.compiled
                    .lock()
                    .expect("not poisoned")
                    .insert(t.id, Arc::new(compiled));
            }
        }
        let cache = self.compiled.lock().expect("not poisoned").clone();
        Ok(claimed
            .iter()
            .map(|m| {
                let prepared = prepare_one(tenant, m, contacts.get(&m.contact_id), &cache, &names);
                (m.clone(), prepared)
            })
            .collect())
    }
}

enum Prepared {
    Send(Outgoing),
    Skip(Outcome),
}

fn prepare_one(
    tenant: Uuid,
    m: &Claimed,
    contact: Option<&Recipient>,
    compiled: &HashMap<Uuid, Arc<Option<Compiled>>>,
    names: &HashMap<Uuid, String>,
) -> Prepared {
    let channel = Channel::parse(&m.channel).unwrap_or(Channel::Sms);
    let outgoing = |subject, body| Outgoing {
        id: m.id,
        tenant_id: tenant,
        campaign_id: m.campaign_id,
        contact_id: m.contact_id,
        channel,
        recipient: m.recipient.clone(),
        subject,
        body,
    };
    let Some(campaign) = m.campaign_id else {
        return Prepared::Send(outgoing(None, m.body.clone().unwrap_or_default()));
    };
    let Some(contact) = contact.filter(|c| !c.gone) else {
        return Prepared::Skip(Outcome::Cancelled {
            error: "the contact was deleted or opted out before the message went out".into(),
        });
    };
    let Some(Some(template)) = compiled.get(&campaign).map(|c| c.as_ref().as_ref()) else {
        return Prepared::Skip(Outcome::Failed {
            error: "the campaign's template does not compile".into(),
            opted_out: false,
        });
    };
    let ctx = RenderContext {
        contact: ContactVars {
            name: Some(&contact.name),
            phone: contact.phone.as_deref(),
            email: contact.email.as_deref(),
            attributes: contact.attributes.as_object(),
        },
        campaign: None,
    };
    let ctx = match names.get(&campaign) {
        Some(name) => ctx.in_campaign(name),
        None => ctx,
    };
    match template.render(&ctx) {
        Ok(rendered) => Prepared::Send(outgoing(rendered.subject, rendered.body)),
        Err(e) => Prepared::Skip(Outcome::Failed {
            error: format!("the template does not render for this contact: {e}"),
            opted_out: false,
        }),
    }
}
