//! Template SQL. Every function takes a [`TenantTx`]; queries name the tenant explicitly as
//! well, which lets the planner use the tenant-leading indexes (RLS is the guarantee, not
//! the filter).

use uuid::Uuid;

use super::input::{NewTemplate, Revision};
use super::{Channel, Template};
use crate::db::StoreError;
use crate::db::{self, TenantTx};
use crate::domain::{Cursor, Limit, Offset, Paging};

/// The columns of [`Template`]; a macro so that statements stay `'static` strings.
macro_rules! columns {
    () => {
        "id, tenant_id, name, channel, subject, body, variables, created_at, updated_at, deleted_at"
    };
}

pub struct ListQuery {
    pub limit: Limit,
    pub offset: Option<Offset>,
    pub cursor: Option<Cursor>,
    pub channel: Option<Channel>,
}

pub async fn insert(tx: &mut TenantTx, new: &NewTemplate) -> Result<Template, StoreError> {
    let tenant = tx.tenant();
    let r = &new.revision;
    sqlx::query_as(concat!(
        "INSERT INTO message_templates (tenant_id, id, name, channel, subject, body, variables)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         RETURNING ",
        columns!()
    ))
    .bind(tenant)
    .bind(new.id)
    .bind(&r.name)
    .bind(r.channel.as_str())
    .bind(r.subject.as_deref())
    .bind(&r.body)
    .bind(&r.variables)
    .fetch_one(tx.conn())
    .await
    .map_err(conflict)
}

pub async fn get(tx: &mut TenantTx, id: Uuid) -> Result<Option<Template>, StoreError> {
    let tenant = tx.tenant();
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        " FROM message_templates WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(tx.conn())
    .await?)
}

/// A live template, locked until the transaction ends: a change is merged into it and
/// written back without another writer in between.
pub async fn get_for_update(tx: &mut TenantTx, id: Uuid) -> Result<Option<Template>, StoreError> {
    let tenant = tx.tenant();
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        " FROM message_templates WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL
          FOR UPDATE"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(tx.conn())
    .await?)
}

/// One page, newest first, plus the total when paging by offset.
pub async fn list(
    tx: &mut TenantTx,
    q: &ListQuery,
) -> Result<(Vec<Template>, Option<i64>), StoreError> {
    let tenant = tx.tenant();
    let paging = Paging {
        limit: q.limit,
        offset: q.offset,
        cursor: q.cursor,
    };
    Ok(db::newest_first(tx, columns!(), paging, |sql| {
        sql.push("FROM message_templates WHERE tenant_id = ")
            .push_bind(tenant)
            .push(" AND deleted_at IS NULL");
        if let Some(channel) = q.channel {
            sql.push(" AND channel = ").push_bind(channel.as_str());
        }
    })
    .await?)
}

pub async fn update(
    tx: &mut TenantTx,
    id: Uuid,
    r: &Revision,
) -> Result<Option<Template>, StoreError> {
    let tenant = tx.tenant();
    sqlx::query_as(concat!(
        "UPDATE message_templates SET
            name = $3, channel = $4, subject = $5, body = $6, variables = $7, updated_at = now()
         WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL
         RETURNING ",
        columns!()
    ))
    .bind(tenant)
    .bind(id)
    .bind(&r.name)
    .bind(r.channel.as_str())
    .bind(r.subject.as_deref())
    .bind(&r.body)
    .bind(&r.variables)
    .fetch_optional(tx.conn())
    .await
    .map_err(conflict)
}

/// Campaigns that have not finished (draft, scheduled, running, paused) and send
/// template `id`.
pub async fn unfinished_campaigns(tx: &mut TenantTx, id: Uuid) -> Result<i64, StoreError> {
    let tenant = tx.tenant();
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM campaigns
         WHERE tenant_id = $1 AND template_id = $2 AND deleted_at IS NULL
           AND status IN ('draft', 'scheduled', 'running', 'paused')",
    )
    .bind(tenant)
    .bind(id)
    .fetch_one(tx.conn())
    .await?)
}

pub async fn soft_delete(tx: &mut TenantTx, id: Uuid) -> Result<Option<Template>, StoreError> {
    let tenant = tx.tenant();
    Ok(sqlx::query_as(concat!(
        "UPDATE message_templates SET deleted_at = now(), updated_at = now()
         WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL
         RETURNING ",
        columns!()
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(tx.conn())
    .await?)
}

/// The name index is tenant-scoped, so a conflict only ever concerns the caller's own
/// templates.
fn conflict(err: sqlx::Error) -> StoreError {
    match db::unique_violation(&err) {
        Some("message_templates_name_live") => {
            StoreError::conflict("a template with this name already exists")
        }
        _ => err.into(),
    }
}
