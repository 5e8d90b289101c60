//! Group SQL. Every function takes a [`TenantTx`]; queries name the tenant explicitly as
//! well, so the planner uses the tenant-leading indexes (RLS is the guarantee, not the
//! filter).
//!
//! # Membership and locks
//!
//! `groups.member_count` changes only together with the `group_contacts` rows it counts,
//! by the number of rows a statement actually inserted or deleted, while the transaction
//! holds the group's row lock (`FOR NO KEY UPDATE`, which does not block the `KEY SHARE`
//! locks of foreign keys, e.g. a campaign being created for the group). Concurrent changes
//! to one group therefore run one after the other, and `INSERT … ON CONFLICT DO NOTHING`
//! makes a repeated add insert nothing.
//!
//! Adding also takes `FOR SHARE` on the live contacts it is about to add, so a contact
//! cannot be soft-deleted between being found live and becoming a member (its deletion
//! waits, then removes the new membership too). Every path takes contact locks before
//! group locks, and group locks in id order, so the paths cannot deadlock one another:
//!
//! | path | locks, in order |
//! |---|---|
//! | add members | contacts (`FOR SHARE`, id order), the group |
//! | remove members, update / delete group | the group |
//! | delete a contact | the contact (its `UPDATE`), its groups (id order) |

use std::collections::HashSet;

use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

use super::input::{GroupPatch, MemberIds, NewGroup};
use super::{AddReport, Group, Member, RemoveReport};
use crate::db::StoreError;
use crate::db::{self, TenantTx};
use crate::domain::{Cursor, Limit, Offset, Paging};

/// The columns of [`Group`] (of the table aliased `g`); a macro so that statements stay
/// `'static` strings.
macro_rules! columns {
    () => {
        "g.id, g.tenant_id, g.name, g.description, g.member_count, g.created_at, g.updated_at,
         g.deleted_at"
    };
}

/// The columns of a [`Contact`](crate::contacts::Contact), which decodes them by position.
use crate::contacts::store::columns as contact_columns;

pub struct ListQuery {
    pub limit: Limit,
    pub offset: Option<Offset>,
    pub cursor: Option<Cursor>,
}

pub async fn insert(tx: &mut TenantTx, new: &NewGroup) -> Result<Group, StoreError> {
    let tenant = tx.tenant();
    sqlx::query_as(concat!(
        "INSERT INTO groups AS g (tenant_id, id, name, description)
         VALUES ($1, $2, $3, $4)
         RETURNING ",
        columns!()
    ))
    .bind(tenant)
    .bind(new.id)
    .bind(new.name.as_str())
    .bind(new.description.as_ref().map(|d| d.as_str()))
    .fetch_one(tx.conn())
    .await
    .map_err(conflict)
}

/// A live group.
pub async fn get(tx: &mut TenantTx, id: Uuid) -> Result<Option<Group>, StoreError> {
    let tenant = tx.tenant();
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        " FROM groups g WHERE g.tenant_id = $1 AND g.id = $2 AND g.deleted_at IS NULL"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(tx.conn())
    .await?)
}

/// Whether `id` is a live group of the tenant.
pub async fn exists(tx: &mut TenantTx, id: Uuid) -> Result<bool, StoreError> {
    let tenant = tx.tenant();
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM groups WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL)",
    )
    .bind(tenant)
    .bind(id)
    .fetch_one(tx.conn())
    .await?)
}

/// One page of live groups, newest first (`limit + 1` rows, so the caller can tell whether
/// another page follows), plus the total when paging by offset.
pub async fn list(
    tx: &mut TenantTx,
    q: &ListQuery,
) -> Result<(Vec<Group>, Option<i64>), StoreError> {
    let tenant = tx.tenant();
    let paging = Paging {
        limit: q.limit,
        offset: q.offset,
        cursor: q.cursor,
    };
    Ok(db::newest_first(tx, columns!(), paging, |sql| {
        sql.push("FROM groups g WHERE g.tenant_id = ")
            .push_bind(tenant)
            .push(" AND g.deleted_at IS NULL");
    })
    .await?)
}

pub async fn update(
    tx: &mut TenantTx,
    id: Uuid,
    patch: &GroupPatch,
) -> Result<Option<Group>, StoreError> {
    let tenant = tx.tenant();
    let description = patch
        .description
        .as_ref()
        .map(|d| d.as_ref().map(|d| d.as_str()));
    sqlx::query_as(concat!(
        "UPDATE groups AS g SET
            name = coalesce($3, g.name),
            description = CASE WHEN $4 THEN $5 ELSE g.description END,
            updated_at = now()
         WHERE g.tenant_id = $1 AND g.id = $2 AND g.deleted_at IS NULL
         RETURNING ",
        columns!()
    ))
    .bind(tenant)
    .bind(id)
    .bind(patch.name.as_ref().map(|n| n.as_str()))
    .bind(description.is_some())
    .bind(description.flatten())
    .fetch_optional(tx.conn())
    .await
    .map_err(conflict)
}

/// Stamps the group deleted. Its memberships stay: campaigns keep referring to the group,
/// deleting a million rows does not belong in a request, and the rows are unreachable
/// through the API once the group is gone (every membership route and the `groupId`
/// filter answer 404 for a deleted group).
pub async fn soft_delete(tx: &mut TenantTx, id: Uuid) -> Result<Option<Group>, StoreError> {
    let tenant = tx.tenant();
    Ok(sqlx::query_as(concat!(
        "UPDATE groups AS g SET deleted_at = now(), updated_at = now()
         WHERE g.tenant_id = $1 AND g.id = $2 AND g.deleted_at IS NULL
         RETURNING ",
        columns!()
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(tx.conn())
    .await?)
}

/// Locks a live group for a membership change; `None` when there is no such group.
async fn lock(tx: &mut TenantTx, id: Uuid) -> Result<Option<Group>, StoreError> {
    let tenant = tx.tenant();
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        " FROM groups g WHERE g.tenant_id = $1 AND g.id = $2 AND g.deleted_at IS NULL
          FOR NO KEY UPDATE"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(tx.conn())
    .await?)
}

/// The group after a membership statement, and the contact ids that statement changed.
#[derive(sqlx::FromRow)]
struct Changed {
    #[sqlx(flatten)]
    group: Group,
    ids: Vec<Uuid>,
}

/// Which of `ids` are live contacts of this tenant, held so that none is deleted before this
/// transaction commits.
async fn lock_live_contacts(tx: &mut TenantTx, ids: &MemberIds) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT id FROM contacts
         WHERE tenant_id = $1 AND id = ANY($2::uuid[]) AND deleted_at IS NULL
         ORDER BY id
         FOR SHARE",
    )
    .bind(tx.tenant())
    .bind(ids.as_slice())
    .fetch_all(tx.conn())
    .await
}

/// Adds `live` to `group` and its member count in one statement; `None` when none was new.
async fn insert_members(
    tx: &mut TenantTx,
    group: Uuid,
    live: &[Uuid],
) -> Result<Option<Changed>, sqlx::Error> {
    if live.is_empty() {
        return Ok(None);
    }
    sqlx::query_as(concat!(
        "WITH ins AS (
            INSERT INTO group_contacts (tenant_id, group_id, contact_id)
            SELECT $1, $2, id FROM unnest($3::uuid[]) AS c(id)
            ON CONFLICT DO NOTHING
            RETURNING contact_id
         ), n AS (
            SELECT count(*) AS n, array_agg(contact_id) AS ids FROM ins
         )
         UPDATE groups AS g SET member_count = g.member_count + n.n, updated_at = now()
         FROM n
         WHERE g.tenant_id = $1 AND g.id = $2 AND n.n > 0
         RETURNING n.ids, ",
        columns!()
    ))
    .bind(tx.tenant())
    .bind(group)
    .bind(live)
    .fetch_optional(tx.conn())
    .await
}

/// Adds the live contacts among `ids` to the group; `None` when there is no such group.
pub async fn add_members(
    tx: &mut TenantTx,
    group: Uuid,
    ids: &MemberIds,
) -> Result<Option<AddReport>, StoreError> {
    // Contacts first (see the module's lock order), then the group.
    let live = lock_live_contacts(tx, ids).await?;
    let Some(locked) = lock(tx, group).await? else {
        return Ok(None);
    };
    let changed = insert_members(tx, group, &live).await?;
    let (group, added) = match changed {
        Some(c) => (c.group, c.ids.into_iter().collect()),
        None => (locked, HashSet::new()),
    };
    let live: HashSet<Uuid> = live.into_iter().collect();
    let (already_members, not_found) = ids
        .as_slice()
        .iter()
        .copied()
        .filter(|id| !added.contains(id))
        .partition(|id| live.contains(id));
    Ok(Some(AddReport {
        added: added.len(),
        already_members,
        not_found,
        group,
    }))
}

/// Removes the memberships of `ids` in the group; `None` when there is no such group.
pub async fn remove_members(
    tx: &mut TenantTx,
    group: Uuid,
    ids: &MemberIds,
) -> Result<Option<RemoveReport>, StoreError> {
    let tenant = tx.tenant();
    let Some(locked) = lock(tx, group).await? else {
        return Ok(None);
    };
    let changed: Option<Changed> = sqlx::query_as(concat!(
        "WITH del AS (
            DELETE FROM group_contacts
            WHERE tenant_id = $1 AND group_id = $2 AND contact_id = ANY($3::uuid[])
            RETURNING contact_id
         ), n AS (
            SELECT count(*) AS n, array_agg(contact_id) AS ids FROM del
         )
         UPDATE groups AS g SET member_count = g.member_count - n.n, updated_at = now()
         FROM n
         WHERE g.tenant_id = $1 AND g.id = $2 AND n.n > 0
         RETURNING n.ids, ",
        columns!()
    ))
    .bind(tenant)
    .bind(group)
    .bind(ids.as_slice())
    .fetch_optional(tx.conn())
    .await?;

    let (group, removed) = match changed {
        Some(c) => (c.group, c.ids.into_iter().collect()),
        None => (locked, HashSet::new()),
    };
    let not_members = ids
        .as_slice()
        .iter()
        .filter(|id| !removed.contains(*id))
        .copied()
        .collect();
    Ok(Some(RemoveReport {
        removed: removed.len(),
        not_members,
        group,
    }))
}

/// One page of a group's members, newest contact first (`limit + 1` rows). Walks the
/// primary key `(tenant_id, group_id, contact_id)` backwards and looks each contact up by
/// its own key in a `LATERAL` subquery that `OFFSET 0` keeps from being flattened, so the
/// plan is that nested loop whatever the group's size and however the plan is cached; a
/// page costs the same in a group of ten or of a million (see `contacts::store::list`).
pub async fn members(
    tx: &mut TenantTx,
    group: Uuid,
    limit: Limit,
    cursor: Option<Cursor>,
) -> Result<Vec<Member>, StoreError> {
    let mut page = QueryBuilder::<Postgres>::new("");
    push_members_page(&mut page, tx.tenant(), group, limit, cursor);
    Ok(page.build_query_as().fetch_all(tx.conn()).await?)
}

/// The statement of [`members`], appended to `sql` (the tests put `EXPLAIN` before it).
pub fn push_members_page(
    sql: &mut QueryBuilder<Postgres>,
    tenant: Uuid,
    group: Uuid,
    limit: Limit,
    cursor: Option<Cursor>,
) {
    sql.push(concat!(
        "SELECT c.*, gc.added_at FROM group_contacts gc CROSS JOIN LATERAL (SELECT ",
        contact_columns!(),
        " FROM contacts
          WHERE tenant_id = gc.tenant_id AND id = gc.contact_id AND deleted_at IS NULL
          OFFSET 0) c
          WHERE gc.tenant_id = "
    ));
    sql.push_bind(tenant)
        .push(" AND gc.group_id = ")
        .push_bind(group);
    if let Some(cursor) = cursor {
        sql.push(" AND gc.contact_id < ").push_bind(cursor.id());
    }
    sql.push(" ORDER BY gc.contact_id DESC LIMIT ")
        .push(limit.fetch());
}

/// Takes a contact that has just been soft-deleted (in this transaction) out of every
/// group, decrementing each group's count. Returns the live groups it left, as they are
/// now, for their `group_updated` events.
pub async fn remove_contact(tx: &mut TenantTx, contact: Uuid) -> Result<Vec<Group>, StoreError> {
    let tenant = tx.tenant();
    // The contact's row is already locked by its deletion; now its groups, in id order.
    // No membership of it can appear meanwhile: adding one needs a share lock on it.
    let groups: Vec<Uuid> = sqlx::query_scalar(
        "SELECT g.id FROM groups g
         WHERE g.tenant_id = $1
           AND g.id IN (SELECT group_id FROM group_contacts WHERE tenant_id = $1 AND contact_id = $2)
         ORDER BY g.id
         FOR NO KEY UPDATE OF g",
    )
    .bind(tenant)
    .bind(contact)
    .fetch_all(tx.conn())
    .await?;
    if groups.is_empty() {
        return Ok(Vec::new());
    }
    // A fresh statement, so it sees every membership committed while it waited for the
    // group locks (a concurrent removal's included, which it then does not count twice).
    let changed: Vec<Group> = sqlx::query_as(concat!(
        "WITH del AS (
            DELETE FROM group_contacts WHERE tenant_id = $1 AND contact_id = $2
            RETURNING group_id
         )
         UPDATE groups AS g SET member_count = g.member_count - 1, updated_at = now()
         FROM del
         WHERE g.tenant_id = $1 AND g.id = del.group_id
         RETURNING ",
        columns!()
    ))
    .bind(tenant)
    .bind(contact)
    .fetch_all(tx.conn())
    .await?;
    Ok(changed
        .into_iter()
        .filter(|g| g.deleted_at.is_none())
        .collect())
}

/// Maps the group constraints to answers that name the field; the unique index is
/// tenant-scoped, so a conflict only ever concerns the caller's own groups.
fn conflict(err: sqlx::Error) -> StoreError {
    match (db::unique_violation(&err), db::check_violation(&err)) {
        (Some("groups_name_live"), _) => {
            StoreError::conflict("a group with this name already exists")
        }
        (_, Some(_)) => StoreError::field("", "the group is not valid"),
        _ => err.into(),
    }
}
