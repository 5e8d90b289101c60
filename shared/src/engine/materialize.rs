//! Materialisation: a running campaign's recipients become its queued messages.
//!
//! Set-based and bounded: each step is one transaction that takes the next batch of the
//! group's members in contact-id order (keyset from `materialized_through`), and inserts a
//! queued message for each live, not-opted-out contact with an address for the channel,
//! all in one `INSERT … SELECT`. No row passes through Rust: bodies are rendered by the
//! sender when it claims them. `ON CONFLICT DO NOTHING` on (campaign, contact) makes a
//! repeated step harmless; the campaign row is locked for the step, so two materialisers
//! of one campaign take turns and the second resumes after the first.

use time::OffsetDateTime;
use uuid::Uuid;

use crate::db::StoreError;
use crate::db::TenantTx;
use crate::stats::{self, Rows};

/// What a step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// More members may follow.
    More { queued: i64 },
    /// Every recipient is queued (or the campaign no longer wants any).
    Done,
}

#[derive(sqlx::FromRow)]
struct State {
    group_id: Uuid,
    status: String,
    channel: Option<String>,
    materialized_through: Option<Uuid>,
    materialized_at: Option<OffsetDateTime>,
}

/// What one batch did: the last member it read, how many it read and how many it queued.
#[derive(sqlx::FromRow)]
struct Batch {
    last: Option<Uuid>,
    seen: i64,
    queued: i64,
}

/// One batch of at most `size` group members for `campaign`, in the caller's transaction.
pub async fn step(tx: &mut TenantTx, campaign: Uuid, size: i64) -> Result<Step, StoreError> {
    let Some(state) = lock(tx, campaign).await? else {
        return Ok(Step::Done);
    };
    if state.materialized_at.is_some() || !matches!(state.status.as_str(), "running" | "paused") {
        return Ok(Step::Done);
    }
    let channel = match state.channel {
        Some(c) => c,
        None => fix_template(tx, campaign, state.group_id).await?,
    };
    let from = state.materialized_through.unwrap_or(Uuid::nil());
    let batch = queue_batch(tx, campaign, state.group_id, &channel, from, size).await?;
    let done = batch.seen < size;
    advance(tx, campaign, &batch, done).await?;
    // Lists by campaign walk `messages_by_campaign` only once the planner knows its rows.
    let queued_rows = u64::try_from(batch.queued).unwrap_or(0);
    stats::analyze_if_unseen(tx, Rows::CampaignMessages(campaign), queued_rows).await?;
    if done {
        // A campaign with no recipients at all is complete at once.
        super::queue::complete_if_done(tx, campaign).await?;
        return Ok(Step::Done);
    }
    Ok(Step::More {
        queued: batch.queued,
    })
}

/// The campaign's materialisation state, its row locked for the step.
async fn lock(tx: &mut TenantTx, campaign: Uuid) -> Result<Option<State>, StoreError> {
    let tenant = tx.tenant();
    Ok(sqlx::query_as(
        "SELECT group_id, status, channel, materialized_through, materialized_at
         FROM campaigns WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL FOR UPDATE",
    )
    .bind(tenant)
    .bind(campaign)
    .fetch_optional(tx.conn())
    .await?)
}

/// First step: the template as it is now is the one every message renders. Answers the
/// campaign's channel.
async fn fix_template(
    tx: &mut TenantTx,
    campaign: Uuid,
    group: Uuid,
) -> Result<String, StoreError> {
    let tenant = tx.tenant();
    let (channel, members): (String, Option<i32>) = sqlx::query_as(
        "UPDATE campaigns c SET channel = t.channel, subject_source = t.subject,
            body_source = t.body
         FROM message_templates t
         WHERE c.tenant_id = $1 AND c.id = $2 AND t.tenant_id = $1 AND t.id = c.template_id
         RETURNING c.channel,
            (SELECT g.member_count FROM groups g WHERE g.tenant_id = $1 AND g.id = c.group_id)",
    )
    .bind(tenant)
    .bind(campaign)
    .fetch_one(tx.conn())
    .await?;
    // Every batch looks members up in their contacts: on rows the planner has never seen,
    // it would scan the tenant's contacts once per member instead.
    let members = u64::try_from(members.unwrap_or(0)).unwrap_or(0);
    stats::analyze_if_unseen(tx, Rows::GroupMembers(group), members).await?;
    stats::analyze_if_unseen(tx, Rows::Contacts, members).await?;
    Ok(channel)
}

/// Queues a message for each of the next `size` members after `from` that is live, not
/// opted out and has an address for `channel`, in one `INSERT … SELECT`.
async fn queue_batch(
    tx: &mut TenantTx,
    campaign: Uuid,
    group: Uuid,
    channel: &str,
    from: Uuid,
    size: i64,
) -> Result<Batch, StoreError> {
    let tenant = tx.tenant();
    // created_at is the ids' time, to the millisecond, as for every message.
    let now = OffsetDateTime::now_utc();
    let now = now
        .replace_nanosecond(now.nanosecond() / 1_000_000 * 1_000_000)
        .unwrap_or(now);
    Ok(sqlx::query_as(
        "WITH batch AS (
            SELECT gc.contact_id FROM group_contacts gc
            WHERE gc.tenant_id = $1 AND gc.group_id = $2 AND gc.contact_id > $3
            ORDER BY gc.contact_id
            LIMIT $4
         ), queued AS (
            INSERT INTO messages (tenant_id, id, campaign_id, contact_id, channel, recipient,
                                  status, queued_at, created_at, updated_at)
            SELECT $1, app.uuid_v7($7), $5, c.id, $6,
                   CASE WHEN $6 = 'sms' THEN c.phone ELSE c.email END,
                   'queued', $7, $7, $7
            FROM batch b JOIN contacts c ON c.tenant_id = $1 AND c.id = b.contact_id
            WHERE c.deleted_at IS NULL AND c.opted_out_at IS NULL
              AND CASE WHEN $6 = 'sms' THEN c.phone ELSE c.email END IS NOT NULL
            ON CONFLICT (tenant_id, campaign_id, contact_id) WHERE campaign_id IS NOT NULL
            DO NOTHING
            RETURNING 1
         )
         SELECT (SELECT contact_id FROM batch ORDER BY contact_id DESC LIMIT 1) AS last,
                (SELECT count(*) FROM batch) AS seen,
                (SELECT count(*) FROM queued) AS queued",
    )
    .bind(tenant)
    .bind(group)
    .bind(from)
    .bind(size)
    .bind(campaign)
    .bind(channel)
    .bind(now)
    .fetch_one(tx.conn())
    .await?)
}

/// Moves the campaign's keyset past the batch and adds what it queued to its counters.
async fn advance(
    tx: &mut TenantTx,
    campaign: Uuid,
    batch: &Batch,
    done: bool,
) -> Result<(), StoreError> {
    let tenant = tx.tenant();
    sqlx::query(
        "UPDATE campaigns SET
            materialized_through = coalesce($3, materialized_through),
            materialized_at = CASE WHEN $4 THEN now() ELSE NULL END,
            recipients_count = recipients_count + $5,
            queued_count = queued_count + $5,
            updated_at = now()
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(campaign)
    .bind(batch.last)
    .bind(done)
    .bind(batch.queued as i32)
    .execute(tx.conn())
    .await?;
    Ok(())
}
