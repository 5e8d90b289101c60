//! Campaign SQL. Every function takes a [`TenantTx`]; queries name the tenant explicitly as
//! well, so the planner can use the tenant-leading indexes (RLS is the guarantee, not the
//! filter).

use time::OffsetDateTime;
use uuid::Uuid;

use super::input::{CampaignPatch, NewCampaign};
use super::{Action, Campaign, Status, transition};
use crate::db::StoreError;
use crate::db::{self, TenantTx};
use crate::domain::{Cursor, FieldError, Limit, Offset, Paging};

/// The columns of [`Campaign`]; a macro so that statements stay `'static` strings.
macro_rules! columns {
    () => {
        "id, tenant_id, name, template_id, group_id, status, scheduled_at, started_at,
         completed_at, cancelled_at, recipients_count, queued_count, sent_count,
         delivered_count, read_count, failed_count, created_at, updated_at, deleted_at"
    };
}

pub struct ListQuery {
    pub limit: Limit,
    pub offset: Option<Offset>,
    pub cursor: Option<Cursor>,
    pub status: Option<Status>,
}

/// Refuses (422, naming the field) a template or group that is not a live resource of the
/// tenant. Another tenant's ids are invisible here (RLS), so they read as unknown. The rows
/// found are share-locked until the transaction ends, so they cannot be deleted under the
/// campaign being written.
pub async fn check_references(
    tx: &mut TenantTx,
    template_id: Option<Uuid>,
    group_id: Option<Uuid>,
) -> Result<(), StoreError> {
    let mut errors = Vec::new();
    if let Some(id) = template_id
        && !live_template(tx, id).await?
    {
        errors.push(FieldError::new("/templateId", "no such template"));
    }
    if let Some(id) = group_id
        && !live_group(tx, id).await?
    {
        errors.push(FieldError::new("/groupId", "no such group"));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(StoreError::invalid(errors))
    }
}

async fn live_template(tx: &mut TenantTx, id: Uuid) -> Result<bool, sqlx::Error> {
    let tenant = tx.tenant();
    let found: Option<i32> = sqlx::query_scalar(
        "SELECT 1 FROM message_templates
         WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL
         FOR SHARE",
    )
    .bind(tenant)
    .bind(id)
    .fetch_optional(tx.conn())
    .await?;
    Ok(found.is_some())
}

async fn live_group(tx: &mut TenantTx, id: Uuid) -> Result<bool, sqlx::Error> {
    let tenant = tx.tenant();
    let found: Option<i32> = sqlx::query_scalar(
        "SELECT 1 FROM groups
         WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL
         FOR SHARE",
    )
    .bind(tenant)
    .bind(id)
    .fetch_optional(tx.conn())
    .await?;
    Ok(found.is_some())
}

pub async fn insert(tx: &mut TenantTx, new: &NewCampaign) -> Result<Campaign, StoreError> {
    let tenant = tx.tenant();
    Ok(sqlx::query_as(concat!(
        "INSERT INTO campaigns (tenant_id, id, name, template_id, group_id, scheduled_at)
         VALUES ($1, $2, $3, $4, $5, $6)
         RETURNING ",
        columns!()
    ))
    .bind(tenant)
    .bind(new.id)
    .bind(new.name.as_str())
    .bind(new.template_id)
    .bind(new.group_id)
    .bind(new.scheduled_at)
    .fetch_one(tx.conn())
    .await?)
}

pub async fn get(tx: &mut TenantTx, id: Uuid) -> Result<Option<Campaign>, StoreError> {
    let tenant = tx.tenant();
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        " FROM campaigns WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(tx.conn())
    .await?)
}

/// The live campaign, locked until the transaction ends: every change to a campaign reads
/// it through here, so changes to one campaign happen one after the other.
pub async fn lock(tx: &mut TenantTx, id: Uuid) -> Result<Option<Campaign>, StoreError> {
    let tenant = tx.tenant();
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        " FROM campaigns WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL FOR UPDATE"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(tx.conn())
    .await?)
}

/// One page, newest first, plus the total when paging by offset. With a status filter the
/// page is a range of `campaigns_by_status`, otherwise of `campaigns_live`.
pub async fn list(
    tx: &mut TenantTx,
    q: &ListQuery,
) -> Result<(Vec<Campaign>, Option<i64>), StoreError> {
    let tenant = tx.tenant();
    let paging = Paging {
        limit: q.limit,
        offset: q.offset,
        cursor: q.cursor,
    };
    Ok(db::newest_first(tx, columns!(), paging, |sql| {
        sql.push("FROM campaigns WHERE tenant_id = ")
            .push_bind(tenant)
            .push(" AND deleted_at IS NULL");
        if let Some(status) = q.status {
            sql.push(" AND status = ").push_bind(status.as_str());
        }
    })
    .await?)
}

/// Applies `patch` to a campaign the caller has [`lock`]ed and found editable.
pub async fn update(
    tx: &mut TenantTx,
    id: Uuid,
    patch: &CampaignPatch,
) -> Result<Option<Campaign>, StoreError> {
    let tenant = tx.tenant();
    Ok(sqlx::query_as(concat!(
        "UPDATE campaigns SET
            name = coalesce($3, name),
            template_id = coalesce($4, template_id),
            group_id = coalesce($5, group_id),
            scheduled_at = CASE WHEN $6 THEN $7 ELSE scheduled_at END,
            updated_at = now()
         WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL
           AND status IN ('draft', 'scheduled')
         RETURNING ",
        columns!()
    ))
    .bind(tenant)
    .bind(id)
    .bind(patch.name.as_ref().map(|n| n.as_str()))
    .bind(patch.template_id)
    .bind(patch.group_id)
    .bind(patch.scheduled_at.is_some())
    .bind(patch.scheduled_at.flatten())
    .fetch_optional(tx.conn())
    .await?)
}

/// Moves a campaign from `from` to `to`, only if it is still in `from`: of two racing
/// transitions at most one matches. Stamps `started_at` (the first time it runs),
/// `completed_at` and `cancelled_at`.
pub async fn set_status(
    tx: &mut TenantTx,
    id: Uuid,
    from: Status,
    to: Status,
) -> Result<Option<Campaign>, StoreError> {
    let tenant = tx.tenant();
    Ok(sqlx::query_as(concat!(
        "UPDATE campaigns SET
            status = $4,
            started_at = CASE WHEN $4 = 'running' THEN coalesce(started_at, now()) ELSE started_at END,
            completed_at = CASE WHEN $4 = 'completed' THEN now() ELSE completed_at END,
            cancelled_at = CASE WHEN $4 = 'cancelled' THEN now() ELSE cancelled_at END,
            updated_at = now()
         WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL AND status = $3
         RETURNING ",
        columns!()
    ))
    .bind(tenant)
    .bind(id)
    .bind(from.as_str())
    .bind(to.as_str())
    .fetch_optional(tx.conn())
    .await?)
}

/// Soft-deletes a campaign that is not running.
pub async fn soft_delete(tx: &mut TenantTx, id: Uuid) -> Result<Option<Campaign>, StoreError> {
    let tenant = tx.tenant();
    Ok(sqlx::query_as(concat!(
        "UPDATE campaigns SET deleted_at = now(), updated_at = now()
         WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL AND status <> 'running'
         RETURNING ",
        columns!()
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(tx.conn())
    .await?)
}

/// What a status change did.
pub struct Transitioned {
    pub campaign: Campaign,
    pub from: Status,
    pub to: Status,
}

/// Locks the campaign, asks `choose` which action its current state calls for, and applies
/// it. 404 when there is no such live campaign; 409 naming the current status when the
/// action is illegal from there. `verb` names the request in that answer.
pub async fn act(
    tx: &mut TenantTx,
    id: Uuid,
    verb: &str,
    choose: impl FnOnce(&Campaign) -> Action,
) -> Result<Transitioned, StoreError> {
    let current = lock(tx, id)
        .await?
        .ok_or_else(|| StoreError::not_found("campaign"))?;
    let from = current.status;
    let action = choose(&current);
    let to = transition(from, action).map_err(|_| illegal(from, verb, &current))?;
    if matches!(from, Status::Draft | Status::Scheduled) && to != Status::Cancelled {
        references_still_live(tx, &current).await?;
    }
    // The row is locked, so the status cannot have moved; were the lock ever dropped, the
    // conditional UPDATE would still refuse to act on a status it did not read.
    match set_status(tx, id, from, to).await? {
        Some(campaign) => Ok(Transitioned { campaign, from, to }),
        None => match get(tx, id).await? {
            Some(now) => Err(illegal(now.status, verb, &now)),
            None => Err(StoreError::not_found("campaign")),
        },
    }
}

/// The 409 for an action the campaign's current status does not allow.
pub fn illegal(current: Status, verb: &str, campaign: &Campaign) -> StoreError {
    let why = match (current, verb) {
        (Status::Scheduled, "start") => match campaign.scheduled_at {
            Some(at) => format!(
                " before its scheduledAt ({})",
                at.format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default()
            ),
            None => String::new(),
        },
        _ => String::new(),
    };
    StoreError::conflict(format!(
        "the campaign's current status is {current}: it cannot {verb}{why}"
    ))
    .with_current_status(current)
}

/// Whether `start` should schedule (the campaign's `scheduledAt` is still ahead) or run.
pub fn start_action(campaign: &Campaign, now: OffsetDateTime) -> Action {
    match campaign.scheduled_at {
        Some(at) if at > now => Action::Schedule,
        _ => Action::Start,
    }
}

/// A campaign cannot leave draft or scheduled for a template or group deleted since.
async fn references_still_live(tx: &mut TenantTx, campaign: &Campaign) -> Result<(), StoreError> {
    let template = live_template(tx, campaign.template_id).await?;
    let group = live_group(tx, campaign.group_id).await?;
    match (template, group) {
        (true, true) => Ok(()),
        (false, _) => Err(StoreError::conflict(
            "the campaign's template has been deleted; choose another one first",
        )),
        (_, false) => Err(StoreError::conflict(
            "the campaign's group has been deleted; choose another one first",
        )),
    }
}
