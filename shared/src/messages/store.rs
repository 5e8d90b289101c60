//! Message SQL. Every function takes a [`TenantTx`]; queries name the tenant explicitly as
//! well, so the planner can use the tenant-leading indexes (RLS is the guarantee, not the
//! filter).
//!
//! Message ids are UUIDv7 and `created_at` is the time in the id, so id order is creation
//! order and a time range is a range of ids: every list is one range of one index
//! (`messages_by_campaign`, `messages_by_contact`, `messages_by_status` or
//! `messages_recent`), walked newest first.

use sqlx::{Postgres, QueryBuilder};
use time::OffsetDateTime;
use uuid::Uuid;

use super::input::StatusReport;
use super::{Channel, CounterDelta, Ignored, Message, MessageStatus, advance};
use crate::db::StoreError;
use crate::db::TenantTx;
use crate::domain::{Cursor, Limit, Offset};

/// The columns of [`Message`], each under the table alias `$p` (`"m."`) when given; a macro
/// so that statements stay `'static` strings.
#[rustfmt::skip]
macro_rules! columns {
    () => {
        columns!("")
    };
    ($p:literal) => {
        concat!(
            $p, "id, ", $p, "tenant_id, ", $p, "campaign_id, ", $p, "contact_id, ",
            $p, "channel, ", $p, "recipient, coalesce(", $p, "body, '') AS body, ",
            $p, "status, ", $p, "error, ", $p, "provider_message_id, ", $p, "queued_at, ",
            $p, "sending_at, ", $p, "sent_at, ", $p, "delivered_at, ", $p, "read_at, ",
            $p, "failed_at, ", $p, "created_at, ", $p, "updated_at"
        )
    };
}
pub(crate) use columns;

pub struct ListQuery {
    pub limit: Limit,
    pub offset: Option<Offset>,
    pub cursor: Option<Cursor>,
    pub campaign_id: Option<Uuid>,
    pub contact_id: Option<Uuid>,
    pub status: Option<MessageStatus>,
    /// Created at or after.
    pub from: Option<OffsetDateTime>,
    /// Created before.
    pub to: Option<OffsetDateTime>,
}

/// A message ready to insert, addressed.
pub struct NewRow<'a> {
    pub id: Uuid,
    pub campaign_id: Option<Uuid>,
    pub contact_id: Uuid,
    pub channel: Channel,
    pub recipient: &'a str,
    pub body: &'a str,
}

/// What the message is sent to: a live contact's addresses.
#[derive(Debug, sqlx::FromRow)]
pub struct Addressee {
    pub phone: Option<String>,
    pub email: Option<String>,
    pub opted_out: bool,
}

/// A live contact of the tenant, share-locked until the transaction ends so that it cannot
/// opt out or be deleted while a message to it is being queued.
pub async fn addressee(
    tx: &mut TenantTx,
    contact_id: Uuid,
) -> Result<Option<Addressee>, StoreError> {
    let tenant = tx.tenant();
    Ok(sqlx::query_as(
        "SELECT phone, email, opted_out_at IS NOT NULL AS opted_out FROM contacts
         WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL
         FOR SHARE",
    )
    .bind(tenant)
    .bind(contact_id)
    .fetch_optional(tx.conn())
    .await?)
}

/// The time a UUIDv7 carries, to the millisecond.
pub fn id_time(id: Uuid) -> OffsetDateTime {
    let millis = (id.as_u128() >> 80) as i128;
    OffsetDateTime::from_unix_timestamp_nanos(millis * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// The smallest UUIDv7 of the first millisecond at or after `t`: `created_at >= t` exactly
/// when `id >= id_bound(t)`.
pub fn id_bound(t: OffsetDateTime) -> Uuid {
    let nanos = t.unix_timestamp_nanos();
    let millis = nanos.div_euclid(1_000_000) + i128::from(nanos.rem_euclid(1_000_000) != 0);
    let millis = millis.clamp(0, (1 << 48) - 1) as u128;
    Uuid::from_u128(millis << 80)
}

/// Inserts a queued message. `created_at` and `queued_at` are the id's time, which keeps
/// time ranges and id order in step.
pub async fn insert(tx: &mut TenantTx, row: &NewRow<'_>) -> Result<Message, StoreError> {
    let tenant = tx.tenant();
    Ok(sqlx::query_as(concat!(
        "INSERT INTO messages (tenant_id, id, campaign_id, contact_id, channel, recipient, body,
                               status, queued_at, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'queued', $8, $8, $8)
         RETURNING ",
        columns!()
    ))
    .bind(tenant)
    .bind(row.id)
    .bind(row.campaign_id)
    .bind(row.contact_id)
    .bind(row.channel.as_str())
    .bind(row.recipient)
    .bind(row.body)
    .bind(id_time(row.id))
    .fetch_one(tx.conn())
    .await?)
}

pub async fn get(tx: &mut TenantTx, id: Uuid) -> Result<Option<Message>, StoreError> {
    let tenant = tx.tenant();
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        " FROM messages WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(tx.conn())
    .await?)
}

/// One page, newest first, plus the total when paging by offset.
///
/// Filtering by campaign without a status walks `messages_by_campaign` once per status
/// (each branch a short, ordered range) and merges the branches, rather than sorting every
/// message of the campaign.
pub async fn list(
    tx: &mut TenantTx,
    q: &ListQuery,
) -> Result<(Vec<Message>, Option<i64>), StoreError> {
    let tenant = tx.tenant();
    let mut page = QueryBuilder::<Postgres>::new("");
    push_page(&mut page, tenant, q);
    let items = page.build_query_as().fetch_all(tx.conn()).await?;

    let total = match q.offset {
        Some(_) => {
            let mut count = QueryBuilder::<Postgres>::new("SELECT count(*)");
            push_filters(&mut count, tenant, q, q.status);
            Some(count.build_query_scalar().fetch_one(tx.conn()).await?)
        }
        None => None,
    };
    Ok((items, total))
}

/// The statement of [`list`]'s page, appended to `sql` (the tests put `EXPLAIN` before it).
pub fn push_page(sql: &mut QueryBuilder<Postgres>, tenant: Uuid, q: &ListQuery) {
    let rows = i64::from(q.limit.fetch());
    let skip = q.offset.map_or(0, |o| i64::from(o.get()));
    let branch = |sql: &mut QueryBuilder<Postgres>, status: Option<MessageStatus>, limit: i64| {
        sql.push(concat!("SELECT ", columns!()));
        push_filters(sql, tenant, q, status);
        if let Some(cursor) = q.cursor {
            sql.push(" AND id < ").push_bind(cursor.id());
        }
        sql.push(" ORDER BY id DESC LIMIT ").push(limit);
    };

    if q.campaign_id.is_some() && q.status.is_none() {
        sql.push(concat!("SELECT ", columns!(), " FROM ("));
        for (i, status) in MessageStatus::ALL.into_iter().enumerate() {
            if i > 0 {
                sql.push(" UNION ALL ");
            }
            sql.push("(");
            branch(sql, Some(status), rows + skip);
            sql.push(")");
        }
        sql.push(") AS m ORDER BY id DESC LIMIT ").push(rows);
    } else {
        branch(sql, q.status, rows);
    }
    if q.offset.is_some() {
        sql.push(" OFFSET ").push_bind(skip);
    }
}

/// `FROM messages WHERE …`: the tenant and the list's filters, with `status` for the
/// query's own.
fn push_filters(
    sql: &mut QueryBuilder<Postgres>,
    tenant: Uuid,
    q: &ListQuery,
    status: Option<MessageStatus>,
) {
    sql.push(" FROM messages WHERE tenant_id = ")
        .push_bind(tenant);
    if let Some(campaign) = q.campaign_id {
        sql.push(" AND campaign_id = ").push_bind(campaign);
    }
    if let Some(contact) = q.contact_id {
        sql.push(" AND contact_id = ").push_bind(contact);
    }
    if let Some(status) = status {
        sql.push(" AND status = ").push_bind(status.as_str());
    }
    if let Some(from) = q.from {
        sql.push(" AND id >= ")
            .push_bind(id_bound(from))
            .push(" AND created_at >= ")
            .push_bind(from);
    }
    if let Some(to) = q.to {
        sql.push(" AND id < ")
            .push_bind(id_bound(to))
            .push(" AND created_at < ")
            .push_bind(to);
    }
}

/// What a status report did.
pub enum Outcome {
    Applied {
        message: Message,
        from: MessageStatus,
    },
    Ignored {
        message: Message,
        reason: Ignored,
    },
}

/// Applies a status report with one conditional `UPDATE`: it moves the message only from a
/// status the report may follow ([`MessageStatus::sources`]), so of concurrent reports none
/// ever moves a message backwards, whatever order they commit in. The row stays locked to
/// the end of the transaction, so the campaign counters that follow count each move once.
/// `None` when there is no such message.
pub async fn update_status(
    tx: &mut TenantTx,
    id: Uuid,
    report: &StatusReport,
) -> Result<Option<Outcome>, StoreError> {
    let to = report.status;
    let applied = apply(tx, id, report).await?;
    if let Some(Applied {
        previous_status,
        message,
    }) = applied
    {
        if let Some(campaign) = message.campaign_id {
            count(tx, campaign, CounterDelta::between(previous_status, to)).await?;
        }
        return Ok(Some(Outcome::Applied {
            message,
            from: previous_status,
        }));
    }
    // Not applied: the message is missing, or its status is one the report may not follow.
    // Statuses only move forward, so what is read now still refuses the report.
    let Some(message) = get(tx, id).await? else {
        return Ok(None);
    };
    let reason = advance(message.status, to)
        .err()
        .unwrap_or(Ignored::Same(message.status));
    Ok(Some(Outcome::Ignored { message, reason }))
}

/// A report's move, when it applied: the status the message left, and the message now.
#[derive(sqlx::FromRow)]
struct Applied {
    #[sqlx(try_from = "String")]
    previous_status: MessageStatus,
    #[sqlx(flatten)]
    message: Message,
}

/// The conditional `UPDATE` of [`update_status`]; `None` when it did not apply.
async fn apply(
    tx: &mut TenantTx,
    id: Uuid,
    report: &StatusReport,
) -> Result<Option<Applied>, sqlx::Error> {
    let tenant = tx.tenant();
    let to = report.status;
    let sources: Vec<&str> = to.sources().into_iter().map(|s| s.as_str()).collect();
    sqlx::query_as(concat!(
        "WITH previous AS (
            SELECT id AS previous_id, status AS previous_status FROM messages
            WHERE tenant_id = $1 AND id = $2
            FOR UPDATE
         )
         UPDATE messages SET
            status = $3,
            sending_at = CASE WHEN $3 = 'sending' THEN now() ELSE sending_at END,
            sent_at = CASE WHEN $3 = 'sent' THEN now() ELSE sent_at END,
            delivered_at = CASE WHEN $3 = 'delivered' THEN now() ELSE delivered_at END,
            read_at = CASE WHEN $3 = 'read' THEN now() ELSE read_at END,
            failed_at = CASE WHEN $3 = 'failed' THEN now() ELSE failed_at END,
            error = CASE WHEN $3 = 'failed' THEN $4 ELSE error END,
            provider_message_id = coalesce($5, provider_message_id),
            updated_at = now()
         FROM previous
         WHERE tenant_id = $1 AND id = previous_id AND status = ANY($6)
         RETURNING previous_status, ",
        columns!()
    ))
    .bind(tenant)
    .bind(id)
    .bind(to.as_str())
    .bind(report.error.as_deref())
    .bind(report.provider_message_id.as_deref())
    .bind(&sources)
    .fetch_optional(tx.conn())
    .await
}

/// Adds one message's move to its campaign's counters, in the caller's transaction.
pub async fn count(
    tx: &mut TenantTx,
    campaign: Uuid,
    delta: CounterDelta,
) -> Result<(), StoreError> {
    if delta.is_zero() {
        return Ok(());
    }
    let tenant = tx.tenant();
    sqlx::query(
        "UPDATE campaigns SET
            sent_count = sent_count + $3,
            delivered_count = delivered_count + $4,
            read_count = read_count + $5,
            failed_count = failed_count + $6
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(campaign)
    .bind(delta.sent)
    .bind(delta.delivered)
    .bind(delta.read)
    .bind(delta.failed)
    .execute(tx.conn())
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn ids_carry_their_time() {
        let before = OffsetDateTime::now_utc() - time::Duration::milliseconds(1);
        let id = Uuid::now_v7();
        let at = id_time(id);
        assert!(at >= before && at <= OffsetDateTime::now_utc(), "{at}");
        // The id is at or above the bound of its own millisecond, below the next one's.
        assert!(id >= id_bound(at));
        assert!(id < id_bound(at + time::Duration::milliseconds(1)));
    }

    #[test]
    fn bounds_round_up_to_the_millisecond() {
        let t = datetime!(2026-11-25 20:00:00.001 UTC);
        assert_eq!(id_time(id_bound(t)), t);
        // A time inside a millisecond bounds from the next one: created_at (whole ms) >= t.
        let inside = datetime!(2026-11-25 20:00:00.0015 UTC);
        assert_eq!(
            id_time(id_bound(inside)),
            datetime!(2026-11-25 20:00:00.002 UTC)
        );
        assert_eq!(id_bound(datetime!(1960-01-01 0:00 UTC)), Uuid::nil());
    }
}
