//! The message queue, inside one tenant's transactions: claiming a batch under a lease,
//! recording what the provider said, the campaign counters, progress and completion.

use std::collections::HashMap;
use std::time::Duration;

use serde::Serialize;
use uuid::Uuid;

use crate::campaigns::{Campaign, Status, StatusChanged, store as campaigns};
use crate::contacts::store as contacts;
use crate::db::StoreError;
use crate::db::TenantTx;
use crate::events::{self, EventType};
use crate::messages::input::StatusReport;
use crate::messages::store as messages;
use crate::messages::{Message, MessageStatus};

/// A claimed message.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Claimed {
    pub id: Uuid,
    pub campaign_id: Option<Uuid>,
    pub contact_id: Uuid,
    pub channel: String,
    pub recipient: String,
    pub body: Option<String>,
    pub attempts: i32,
}

/// Claims up to `limit` of the tenant's sendable messages, oldest first: queued ones, and
/// `sending` ones whose lease has ended (a crashed sender's, or a retry whose backoff is
/// over), of direct messages and running campaigns only. Rows another sender is claiming
/// are skipped, not waited for. Each claimed message is `sending`, leased until `lease`
/// from now, its attempt counted.
pub async fn claim(
    tx: &mut TenantTx,
    limit: i64,
    lease: Duration,
) -> Result<Vec<Claimed>, StoreError> {
    let tenant = tx.tenant();
    Ok(sqlx::query_as(
        "WITH picked AS MATERIALIZED (
            SELECT m.id FROM messages m
            WHERE m.tenant_id = $1 AND m.status IN ('queued', 'sending')
              AND (m.status = 'queued' OR m.leased_until < now())
              AND (m.campaign_id IS NULL OR EXISTS (
                    SELECT 1 FROM campaigns c
                    WHERE c.tenant_id = $1 AND c.id = m.campaign_id AND c.status = 'running'))
            ORDER BY m.id
            LIMIT $2
            FOR UPDATE OF m SKIP LOCKED
         )
         UPDATE messages m SET
            status = 'sending',
            sending_at = coalesce(m.sending_at, now()),
            leased_until = now() + make_interval(secs => $3),
            attempts = m.attempts + 1,
            updated_at = now()
         FROM picked
         WHERE m.tenant_id = $1 AND m.id = picked.id
         RETURNING m.id, m.campaign_id, m.contact_id, m.channel, m.recipient, m.body, m.attempts",
    )
    .bind(tenant)
    .bind(limit)
    .bind(lease.as_secs_f64())
    .fetch_all(tx.conn())
    .await?)
}

/// A contact as templates see it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Recipient {
    pub id: Uuid,
    pub name: String,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub attributes: serde_json::Value,
    /// Deleted or opted out since the message was queued: it is not sent.
    pub gone: bool,
}

pub async fn recipients(
    tx: &mut TenantTx,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, Recipient>, StoreError> {
    let tenant = tx.tenant();
    let rows: Vec<Recipient> = sqlx::query_as(
        "SELECT id, name, phone, email, attributes,
                (deleted_at IS NOT NULL OR opted_out_at IS NOT NULL) AS gone
         FROM contacts WHERE tenant_id = $1 AND id = ANY($2)",
    )
    .bind(tenant)
    .bind(ids)
    .fetch_all(tx.conn())
    .await?;
    Ok(rows.into_iter().map(|r| (r.id, r)).collect())
}

/// What a campaign's messages render.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CampaignTemplate {
    pub id: Uuid,
    pub name: String,
    pub recipients_count: i32,
    pub channel: Option<String>,
    pub subject_source: Option<String>,
    pub body_source: Option<String>,
}

pub async fn templates(
    tx: &mut TenantTx,
    ids: &[Uuid],
) -> Result<Vec<CampaignTemplate>, StoreError> {
    let tenant = tx.tenant();
    Ok(sqlx::query_as(
        "SELECT id, name, recipients_count, channel, subject_source, body_source
         FROM campaigns WHERE tenant_id = $1 AND id = ANY($2)",
    )
    .bind(tenant)
    .bind(ids)
    .fetch_all(tx.conn())
    .await?)
}

/// How one claimed message ended this attempt.
#[derive(Debug, Clone)]
pub enum Outcome {
    Sent {
        provider_id: Option<String>,
        /// The rendered body, to keep in the history; `None` when the row already has it.
        body: Option<String>,
    },
    /// Try again after the backoff (the message stays `sending`, its lease moved).
    Retry {
        error: String,
        after: Duration,
    },
    Failed {
        error: String,
        opted_out: bool,
    },
    /// Not sent: the contact was deleted or opted out after the message was queued.
    Cancelled {
        error: String,
    },
}

/// Per-campaign tallies of one batch.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    sent: i32,
    failed: i32,
    errors: i32,
    /// Errors since the batch's last success (the batch is in claim order).
    trailing_errors: i32,
}

/// A batch's outcomes, column by column, as `unnest` takes them.
#[derive(Default)]
struct Batch {
    /// Messages that end this attempt: sent, failed or cancelled.
    ended: Vec<Uuid>,
    statuses: Vec<&'static str>,
    errors: Vec<Option<String>>,
    provider_ids: Vec<Option<String>>,
    bodies: Vec<Option<String>>,
    /// Messages to try again after their backoff.
    retried: Vec<Uuid>,
    retry_errors: Vec<String>,
    retry_after: Vec<f64>,
    /// Contacts the provider says opted out.
    opted_out: Vec<Uuid>,
    /// The campaigns the batch touches, sorted.
    campaigns: Vec<Uuid>,
}

impl Batch {
    fn of(outcomes: &[(Claimed, Outcome)]) -> Batch {
        let mut b = Batch::default();
        for (m, outcome) in outcomes {
            let (status, error, provider_id, body) = match outcome {
                Outcome::Sent { provider_id, body } => ("sent", None, provider_id, body),
                Outcome::Failed { error, opted_out } => {
                    if *opted_out {
                        b.opted_out.push(m.contact_id);
                    }
                    ("failed", Some(error), &None, &None)
                }
                Outcome::Cancelled { error } => ("cancelled", Some(error), &None, &None),
                Outcome::Retry { error, after } => {
                    b.retried.push(m.id);
                    b.retry_errors.push(error.clone());
                    b.retry_after.push(after.as_secs_f64());
                    continue;
                }
            };
            b.ended.push(m.id);
            b.statuses.push(status);
            b.errors.push(error.cloned());
            b.provider_ids.push(provider_id.clone());
            b.bodies.push(body.clone());
        }
        b.campaigns = outcomes.iter().filter_map(|(m, _)| m.campaign_id).collect();
        b.campaigns.sort();
        b.campaigns.dedup();
        b
    }
}

/// Records a batch's outcomes in one transaction: message statuses (only of messages still
/// `sending`: a status callback may have overtaken the sender), opted-out contacts,
/// counters once per campaign, the pause after too many failures in a row, progress
/// events and completion.
pub async fn record(
    tx: &mut TenantTx,
    outcomes: &[(Claimed, Outcome)],
    max_failures: i32,
) -> Result<(), StoreError> {
    let batch = Batch::of(outcomes);
    // Lock order: campaigns before their messages, as cancel and pause take them, so a
    // batch being recorded and a cancel wait for each other instead of deadlocking.
    lock_campaigns(tx, &batch.campaigns).await?;
    let changed = end(tx, &batch).await?;
    retry_later(tx, &batch).await?;
    contacts::opt_out(tx, &batch.opted_out).await?;
    let small = count(tx, tally(outcomes, &changed), max_failures).await?;
    // Direct messages and small campaigns announce every message; large ones announce
    // campaign_progress instead.
    let announce: Vec<StatusChangedOwned> = changed
        .into_iter()
        .filter(|m| m.campaign_id.is_none_or(|c| small.contains(&c)))
        .map(|m| StatusChangedOwned {
            to: m.status,
            message: m,
            from: MessageStatus::Sending,
        })
        .collect();
    events::emit_all(tx, EventType::MessageStatusChanged, &announce).await?;
    Ok(())
}

async fn lock_campaigns(tx: &mut TenantTx, campaigns: &[Uuid]) -> Result<(), StoreError> {
    if !campaigns.is_empty() {
        let tenant = tx.tenant();
        sqlx::query(
            "SELECT 1 FROM campaigns WHERE tenant_id = $1 AND id = ANY($2) ORDER BY id FOR UPDATE",
        )
        .bind(tenant)
        .bind(campaigns)
        .execute(tx.conn())
        .await?;
    }
    Ok(())
}

/// Sent, failed and cancelled messages, in one statement; answers the rows it changed, in
/// claim order.
async fn end(tx: &mut TenantTx, b: &Batch) -> Result<Vec<Message>, StoreError> {
    if b.ended.is_empty() {
        return Ok(Vec::new());
    }
    let tenant = tx.tenant();
    let mut changed: Vec<Message> = sqlx::query_as(concat!(
        "UPDATE messages m SET status = r.status, leased_until = NULL, updated_at = now(),
            sent_at = CASE WHEN r.status = 'sent' THEN now() ELSE m.sent_at END,
            failed_at = CASE WHEN r.status = 'failed' THEN now() ELSE m.failed_at END,
            cancelled_at = CASE WHEN r.status = 'cancelled' THEN now() ELSE m.cancelled_at END,
            error = left(r.error, 2000),
            provider_message_id = coalesce(r.pid, m.provider_message_id),
            body = coalesce(r.body, m.body)
         FROM unnest($2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[])
              AS r(id, status, error, pid, body)
         WHERE m.tenant_id = $1 AND m.id = r.id AND m.status = 'sending'
         RETURNING ",
        crate::messages::store::columns!("m.")
    ))
    .bind(tenant)
    .bind(&b.ended)
    .bind(&b.statuses)
    .bind(&b.errors)
    .bind(&b.provider_ids)
    .bind(&b.bodies)
    .fetch_all(tx.conn())
    .await?;
    changed.sort_by_key(|m| m.id);
    Ok(changed)
}

/// Moves the lease of messages to retry to the end of their backoff.
async fn retry_later(tx: &mut TenantTx, b: &Batch) -> Result<(), StoreError> {
    if b.retried.is_empty() {
        return Ok(());
    }
    let tenant = tx.tenant();
    sqlx::query(
        "UPDATE messages m SET leased_until = now() + make_interval(secs => r.after),
            error = left(r.error, 2000), updated_at = now()
         FROM unnest($2::uuid[], $3::text[], $4::float8[]) AS r(id, error, after)
         WHERE m.tenant_id = $1 AND m.id = r.id AND m.status = 'sending'",
    )
    .bind(tenant)
    .bind(&b.retried)
    .bind(&b.retry_errors)
    .bind(&b.retry_after)
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Per-campaign tallies of what was applied, in claim order for the run of failures.
fn tally(outcomes: &[(Claimed, Outcome)], changed: &[Message]) -> HashMap<Uuid, Tally> {
    let applied: HashMap<Uuid, MessageStatus> = changed.iter().map(|m| (m.id, m.status)).collect();
    let mut tallies: HashMap<Uuid, Tally> = HashMap::new();
    for (m, outcome) in outcomes {
        let Some(campaign) = m.campaign_id else {
            continue;
        };
        let t = tallies.entry(campaign).or_default();
        match (outcome, applied.get(&m.id)) {
            (Outcome::Sent { .. }, Some(_)) => {
                t.sent += 1;
                t.trailing_errors = 0;
            }
            (Outcome::Failed { .. }, Some(_)) => {
                t.failed += 1;
                t.errors += 1;
                t.trailing_errors += 1;
            }
            (Outcome::Retry { .. }, _) => {
                t.errors += 1;
                t.trailing_errors += 1;
            }
            _ => {}
        }
    }
    tallies
}

/// Adds each campaign's tallies to its counters, pauses it after too many failures in a
/// row, announces its progress and completes it when done. Answers the campaigns small
/// enough to announce every message.
async fn count(
    tx: &mut TenantTx,
    tallies: HashMap<Uuid, Tally>,
    max_failures: i32,
) -> Result<Vec<Uuid>, StoreError> {
    let tenant = tx.tenant();
    let mut small = Vec::new();
    for (campaign, t) in tallies {
        let row: Option<(String, i32, i32)> = sqlx::query_as(
            "UPDATE campaigns SET
                sent_count = sent_count + $3,
                failed_count = failed_count + $4,
                consecutive_failures = CASE WHEN $3 > 0 THEN $6 ELSE consecutive_failures + $5 END,
                updated_at = now()
             WHERE tenant_id = $1 AND id = $2
             RETURNING status, consecutive_failures, recipients_count",
        )
        .bind(tenant)
        .bind(campaign)
        .bind(t.sent)
        .bind(t.failed)
        .bind(t.errors)
        .bind(t.trailing_errors)
        .fetch_optional(tx.conn())
        .await?;
        let Some((status, failures, recipients)) = row else {
            continue;
        };
        if recipients <= super::PER_MESSAGE_EVENTS_UP_TO {
            small.push(campaign);
        }
        if status == "running" && failures >= max_failures {
            pause_for_failures(tx, campaign, failures).await?;
        }
        progress(tx, campaign).await?;
        complete_if_done(tx, campaign).await?;
    }
    Ok(small)
}

/// `message_status_changed`'s payload (as [`crate::messages::StatusChanged`], owned).
#[derive(Serialize)]
struct StatusChangedOwned {
    message: Message,
    from: MessageStatus,
    to: MessageStatus,
}

async fn pause_for_failures(
    tx: &mut TenantTx,
    campaign: Uuid,
    failures: i32,
) -> Result<(), StoreError> {
    let Some(paused) = campaigns::set_status(tx, campaign, Status::Running, Status::Paused).await?
    else {
        return Ok(());
    };
    tracing::warn!(campaign_id = %campaign, failures, "campaign paused after failures in a row");
    sqlx::query("UPDATE campaigns SET consecutive_failures = 0 WHERE tenant_id = $1 AND id = $2")
        .bind(tx.tenant())
        .bind(campaign)
        .execute(tx.conn())
        .await?;
    emit_status(tx, &paused, Status::Running, Status::Paused).await
}

pub async fn emit_status(
    tx: &mut TenantTx,
    campaign: &Campaign,
    from: Status,
    to: Status,
) -> Result<(), StoreError> {
    events::emit(
        tx,
        EventType::CampaignStatusChanged,
        &StatusChanged { campaign, from, to },
    )
    .await?;
    Ok(())
}

/// Records a provider's report on one message: its status (if it moves the message
/// forward), the event, the campaign's progress, and the contact's opt-out when the
/// provider says the recipient opted out.
pub async fn apply_report(
    tx: &mut TenantTx,
    message: Uuid,
    report: &StatusReport,
    opted_out: bool,
) -> Result<(), StoreError> {
    let Some(messages::Outcome::Applied { message, from }) =
        messages::update_status(tx, message, report).await?
    else {
        return Ok(());
    };
    let to = report.status;
    let changed = crate::messages::StatusChanged {
        message: &message,
        from,
        to,
    };
    events::emit(tx, EventType::MessageStatusChanged, &changed).await?;
    if let Some(campaign) = message.campaign_id {
        progress(tx, campaign).await?;
    }
    if opted_out {
        contacts::opt_out(tx, &[message.contact_id]).await?;
    }
    Ok(())
}

/// `campaign_progress`: the campaign's counters, at most once a second per campaign.
#[derive(Debug, Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    pub campaign_id: Uuid,
    pub recipients_count: i32,
    pub queued_count: i32,
    pub sent_count: i32,
    pub delivered_count: i32,
    pub read_count: i32,
    pub failed_count: i32,
}

pub async fn progress(tx: &mut TenantTx, campaign: Uuid) -> Result<(), StoreError> {
    let tenant = tx.tenant();
    let due: Option<Progress> = sqlx::query_as(
        "UPDATE campaigns SET progress_emitted_at = now()
         WHERE tenant_id = $1 AND id = $2
           AND (progress_emitted_at IS NULL OR progress_emitted_at <= now() - interval '1 second')
         RETURNING id AS campaign_id, recipients_count, queued_count, sent_count,
                   delivered_count, read_count, failed_count",
    )
    .bind(tenant)
    .bind(campaign)
    .fetch_optional(tx.conn())
    .await?;
    if let Some(p) = due {
        events::emit(tx, EventType::CampaignProgress, &p).await?;
    }
    Ok(())
}

/// Completes a running or paused campaign whose recipients are all queued and none of whose
/// messages is queued or in flight. The campaign row is locked first, so of two senders
/// finishing at once one completes it and the other sees it completed.
pub async fn complete_if_done(tx: &mut TenantTx, campaign: Uuid) -> Result<bool, StoreError> {
    let tenant = tx.tenant();
    let Some(current) = campaigns::lock(tx, campaign).await? else {
        return Ok(false);
    };
    if !matches!(current.status, Status::Running | Status::Paused) {
        return Ok(false);
    }
    let ready: bool = sqlx::query_scalar(
        "SELECT c.materialized_at IS NOT NULL AND NOT EXISTS (
                SELECT 1 FROM messages m
                WHERE m.tenant_id = $1 AND m.campaign_id = $2 AND m.status IN ('queued', 'sending'))
         FROM campaigns c WHERE c.tenant_id = $1 AND c.id = $2",
    )
    .bind(tenant)
    .bind(campaign)
    .fetch_one(tx.conn())
    .await?;
    if !ready {
        return Ok(false);
    }
    let Some(done) = campaigns::set_status(tx, campaign, current.status, Status::Completed).await?
    else {
        return Ok(false);
    };
    progress_final(tx, &done).await?;
    emit_status(tx, &done, current.status, Status::Completed).await?;
    Ok(true)
}

async fn progress_final(tx: &mut TenantTx, c: &Campaign) -> Result<(), StoreError> {
    let p = Progress {
        campaign_id: c.id,
        recipients_count: c.recipients_count,
        queued_count: c.queued_count,
        sent_count: c.sent_count,
        delivered_count: c.delivered_count,
        read_count: c.read_count,
        failed_count: c.failed_count,
    };
    events::emit(tx, EventType::CampaignProgress, &p).await?;
    Ok(())
}

/// Cancels the messages a cancel had to leave `sending` because their lease had not run out
/// yet (waiting on a retry's backoff, or in flight), once it has: they would otherwise stay
/// `sending` for ever, since nothing claims messages of a campaign that is not running.
pub async fn sweep_cancelled(tx: &mut TenantTx) -> Result<u64, StoreError> {
    let tenant = tx.tenant();
    Ok(sqlx::query(
        "WITH left_behind AS MATERIALIZED (
            SELECT m.id FROM messages m
            JOIN campaigns c ON c.tenant_id = m.tenant_id AND c.id = m.campaign_id
            WHERE m.tenant_id = $1 AND m.status = 'sending' AND m.leased_until < now()
              AND c.status = 'cancelled'
            FOR UPDATE OF m SKIP LOCKED
         )
         UPDATE messages m SET status = 'cancelled', cancelled_at = now(), leased_until = NULL,
            updated_at = now()
         FROM left_behind WHERE m.tenant_id = $1 AND m.id = left_behind.id",
    )
    .bind(tenant)
    .execute(tx.conn())
    .await?
    .rows_affected())
}

/// Cancels a campaign's queued messages (in the cancel's own transaction): nothing more of
/// it is sent beyond the messages already in flight. Rows a sender is claiming right now
/// are skipped, not waited for: they are in flight (and waiting on them while holding the
/// campaign row could deadlock with that sender).
pub async fn cancel_queued(tx: &mut TenantTx, campaign: Uuid) -> Result<u64, StoreError> {
    let tenant = tx.tenant();
    Ok(sqlx::query(
        "WITH waiting AS MATERIALIZED (
            SELECT id FROM messages
            WHERE tenant_id = $1 AND campaign_id = $2
              AND (status = 'queued' OR (status = 'sending' AND leased_until < now()))
            FOR UPDATE SKIP LOCKED
         )
         UPDATE messages m SET status = 'cancelled', cancelled_at = now(), leased_until = NULL,
            updated_at = now()
         FROM waiting WHERE m.tenant_id = $1 AND m.id = waiting.id",
    )
    .bind(tenant)
    .bind(campaign)
    .execute(tx.conn())
    .await?
    .rows_affected())
}
