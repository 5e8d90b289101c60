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
use crate::http::Problem;
use crate::messages::Channel;
use crate::providers::{Delivery, Outbound, Outgoing, ProviderConfig, store as providers};
use crate::templates::Channel as TemplateChannel;
use crate::templates::render::{Compiled, ContactVars, RenderContext};

/// What one invocation did.
/// Attempts at recording one batch's outcomes (see [`Sender::send_batch`]).
const RECORD_ATTEMPTS: u32 = 3;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    pub queued: i64,
    pub claimed: usize,
    pub sent: usize,
    pub failed: usize,
    pub retried: usize,
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
    pub async fn run_once(&self, budget: Duration) -> Result<Report, Problem> {
        let deadline = Instant::now() + budget;
        let mut report = Report::default();
        loop {
            let mut busy = false;
            let pending: Vec<(Uuid, Uuid)> =
                sqlx::query_as("SELECT tenant_id, id FROM app.campaigns_to_materialize(16)")
                    .fetch_all(self.db.pool())
                    .await?;
            for (tenant, campaign) in pending {
                while Instant::now() < deadline {
                    let mut tx = self.db.begin_service(tenant).await?;
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
            let tenants: Vec<Uuid> =
                sqlx::query_scalar("SELECT tenant_id FROM app.tenants_with_pending_messages(1000)")
                    .fetch_all(self.db.pool())
                    .await?;
            for tenant in tenants {
                if Instant::now() >= deadline {
                    break;
                }
                let claimed = self.send_batch(tenant, &mut report).await?;
                busy |= claimed > 0;
            }
            if !busy || Instant::now() >= deadline {
                return Ok(report);
            }
        }
    }

    async fn provider_config(&self, tenant: Uuid) -> Result<Option<ProviderConfig>, Problem> {
        let mut tx = self.db.begin_service(tenant).await?;
        let config = providers::get(&mut tx).await?;
        tx.commit().await?;
        Ok(config.or_else(|| {
            self.default_log
                .then(|| ProviderConfig::default_log(tenant))
        }))
    }

    /// One batch of one tenant: claim, render, send, record. Returns how many were claimed.
    async fn send_batch(&self, tenant: Uuid, report: &mut Report) -> Result<usize, Problem> {
        let Some(config) = self.provider_config(tenant).await? else {
            tracing::warn!(tenant_id = %tenant, "messages wait: the tenant has no delivery provider");
            return Ok(0);
        };
        let mut limit = self.tuning.claim_batch;
        if let Some(rate) = config.messages_per_second {
            // Claim no more than can go out well within the lease.
            let fits = (f64::from(rate) * self.tuning.lease.as_secs_f64() / 2.0) as i64;
            limit = limit.min(fits.max(1));
        }

        let mut tx = self.db.begin_service(tenant).await?;
        let claimed = queue::claim(&mut tx, limit, self.tuning.lease).await?;
        if claimed.is_empty() {
            tx.commit().await?;
            return Ok(0);
        }
        let prepared = self.prepare(&mut tx, &claimed).await?;
        let (ids, bodies): (Vec<Uuid>, Vec<String>) = prepared
            .iter()
            .filter_map(|(m, p)| match p {
                Prepared::Send(out) if m.body.as_deref() != Some(out.body.as_str()) => {
                    Some((m.id, out.body.clone()))
                }
                _ => None,
            })
            .unzip();
        queue::store_bodies(&mut tx, &ids, &bodies).await?;
        tx.commit().await?;
        report.claimed += claimed.len();

        let provider = self.outbound.provider(&config);
        let interval = config
            .messages_per_second
            .map(|r| Duration::from_secs_f64(1.0 / f64::from(r)));
        let slots: Vec<Option<Instant>> = prepared
            .iter()
            .map(|_| interval.map(|i| self.slot(tenant, i)))
            .collect();
        let tuning = &self.tuning;
        let provider = &provider;
        let outcomes: Vec<(Claimed, Outcome)> =
            futures_util::stream::iter(prepared.into_iter().zip(slots))
                .map(|((m, p), slot)| async move {
                    let outcome = match p {
                        Prepared::Skip(outcome) => outcome,
                        Prepared::Send(out) => {
                            if let Some(at) = slot {
                                tokio::time::sleep_until(at.into()).await;
                            }
                            match provider.send(&out).await {
                                Delivery::Sent { provider_id } => Outcome::Sent { provider_id },
                                Delivery::Permanent(error) => Outcome::Failed {
                                    error,
                                    opted_out: false,
                                },
                                Delivery::OptedOut(error) => Outcome::Failed {
                                    error,
                                    opted_out: true,
                                },
                                Delivery::Transient(error) if m.attempts >= tuning.max_attempts => {
                                    Outcome::Failed {
                                        error: format!("{error} (after {} attempts)", m.attempts),
                                        opted_out: false,
                                    }
                                }
                                Delivery::Transient(error) => Outcome::Retry {
                                    error,
                                    after: tuning.backoff_after(m.attempts),
                                },
                            }
                        }
                    };
                    (m, outcome)
                })
                .buffer_unordered(self.tuning.concurrency)
                .collect()
                .await;
        for (_, o) in &outcomes {
            match o {
                Outcome::Sent { .. } => report.sent += 1,
                Outcome::Failed { .. } => report.failed += 1,
                Outcome::Retry { .. } => report.retried += 1,
                Outcome::Cancelled { .. } => {}
            }
        }
        let mut ordered = outcomes;
        ordered.sort_by_key(|(m, _)| m.id);
        // Two senders recording at once can deadlock in PostgreSQL, which then aborts one of
        // them. The recording is one transaction that changes only rows still `sending`, so
        // running it again after an abort applies it exactly once.
        let mut attempt = 1;
        loop {
            let mut tx = self.db.begin_service(tenant).await?;
            let recorded =
                match queue::record(&mut tx, &ordered, config.max_consecutive_failures).await {
                    Ok(()) => tx.commit().await.map_err(Problem::from),
                    Err(problem) => Err(problem),
                };
            match recorded {
                Ok(()) => return Ok(ordered.len()),
                Err(problem) if attempt < RECORD_ATTEMPTS => {
                    tracing::warn!(%tenant, attempt, detail = ?problem.detail, "recording a batch failed; retrying");
                    attempt += 1;
                }
                Err(problem) => return Err(problem),
            }
        }
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
    ) -> Result<Vec<(Claimed, Prepared)>, Problem> {
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
