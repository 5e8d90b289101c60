//! Contact SQL. Every function takes a [`TenantTx`]; queries name the tenant explicitly as
//! well, which lets the planner use the tenant-leading indexes (RLS is the guarantee, not
//! the filter).

use sqlx::postgres::PgRow;
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

use super::Contact;
use super::input::{ContactPatch, NewContact};
use crate::db::StoreError;
use crate::db::{self, TenantTx};
use crate::domain::{Cursor, Limit, Offset};

/// The columns of [`Contact`]; a macro so that statements stay `'static` strings. `Contact`
/// decodes them by position: change them together with [`COLUMNS`].
macro_rules! columns {
    () => {
        "id, tenant_id, name, phone, email, attributes, opted_out_at,
         (opted_out_at IS NOT NULL) AS opted_out, created_at, updated_at, deleted_at"
    };
}
pub(crate) use columns;

/// The names of `columns!()` in order, as `Contact`'s `FromRow` reads them.
pub const COLUMNS: [&str; 11] = [
    "id",
    "tenant_id",
    "name",
    "phone",
    "email",
    "attributes",
    "opted_out_at",
    "opted_out",
    "created_at",
    "updated_at",
    "deleted_at",
];

/// The expression the trigram index `contacts_search` is built on.
const SEARCH_TEXT: &str = "(name || ' ' || coalesce(email, '') || ' ' || coalesce(phone, ''))";

pub struct ListQuery {
    pub limit: Limit,
    pub offset: Option<Offset>,
    pub cursor: Option<Cursor>,
    pub search: Option<String>,
    /// Only members of this group (which the caller has checked is live).
    pub group: Option<Uuid>,
}

pub async fn insert(tx: &mut TenantTx, new: &NewContact) -> Result<Contact, StoreError> {
    let tenant = tx.tenant();
    sqlx::query_as(concat!(
        "INSERT INTO contacts (tenant_id, id, name, phone, email, attributes, opted_out_at)
         VALUES ($1, $2, $3, $4, $5, $6, CASE WHEN $7 THEN now() END)
         RETURNING ",
        columns!()
    ))
    .bind(tenant)
    .bind(new.id)
    .bind(new.name.as_str())
    .bind(new.phone.as_ref().map(|p| p.as_str()))
    .bind(new.email.as_ref().map(|e| e.as_str()))
    .bind(new.attributes.clone().into_value())
    .bind(new.opted_out)
    .fetch_one(tx.conn())
    .await
    .map_err(conflict)
}

/// Inserts every contact that conflicts with no live contact; returns those inserted.
pub async fn insert_many(
    tx: &mut TenantTx,
    rows: &[NewContact],
) -> Result<Vec<Contact>, StoreError> {
    let tenant = tx.tenant();
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
    let phones: Vec<Option<&str>> = rows
        .iter()
        .map(|r| r.phone.as_ref().map(|p| p.as_str()))
        .collect();
    let emails: Vec<Option<&str>> = rows
        .iter()
        .map(|r| r.email.as_ref().map(|e| e.as_str()))
        .collect();
    let attributes: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| r.attributes.clone().into_value())
        .collect();
    let opted_out: Vec<bool> = rows.iter().map(|r| r.opted_out).collect();
    Ok(sqlx::query_as(concat!(
        "INSERT INTO contacts (tenant_id, id, name, phone, email, attributes, opted_out_at)
         SELECT $1, id, name, phone, email, attributes, CASE WHEN opted_out THEN now() END
         FROM unnest($2::uuid[], $3::text[], $4::text[], $5::text[], $6::jsonb[], $7::bool[])
              AS r(id, name, phone, email, attributes, opted_out)
         ON CONFLICT DO NOTHING
         RETURNING ",
        columns!()
    ))
    .bind(tenant)
    .bind(ids)
    .bind(names)
    .bind(phones)
    .bind(emails)
    .bind(attributes)
    .bind(opted_out)
    .fetch_all(tx.conn())
    .await?)
}

pub async fn get(tx: &mut TenantTx, id: Uuid) -> Result<Option<Contact>, StoreError> {
    let tenant = tx.tenant();
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        " FROM contacts WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(tx.conn())
    .await?)
}

/// One page, newest first, plus the total when paging by offset. The rows hold
/// `columns!()`, to be read through [`ContactRef::from_row`](super::ContactRef::from_row).
///
/// With a group, the page walks the primary key of `group_contacts`, `(tenant_id,
/// group_id, contact_id)`, backwards and looks each member up in `contacts` through a
/// `LATERAL` subquery (`OFFSET 0` keeps it from being flattened into a join), so the plan
/// is always that nested loop, generic plans included: a page costs `limit` index probes
/// whether the group holds ten contacts or a million, and however sparse it is among the
/// tenant's contacts. A plain join lets a generic plan merge-join against every contact
/// from the newest down, which a deep cursor or a small group makes a scan.
pub async fn list(
    tx: &mut TenantTx,
    q: &ListQuery,
) -> Result<(Vec<PgRow>, Option<i64>), StoreError> {
    let tenant = tx.tenant();
    let mut page = QueryBuilder::<Postgres>::new("");
    push_page(&mut page, tenant, q);
    let items = page.build().fetch_all(tx.conn()).await?;

    let total = match q.offset {
        Some(_) => {
            let mut count = QueryBuilder::<Postgres>::new("SELECT count(*)");
            match q.group {
                None => count
                    .push(" FROM contacts WHERE tenant_id = ")
                    .push_bind(tenant),
                // Counting all of a group is a join the planner may hash or merge.
                Some(group) => count
                    .push(
                        " FROM group_contacts gc JOIN contacts
                            ON contacts.tenant_id = gc.tenant_id AND contacts.id = gc.contact_id
                          WHERE gc.tenant_id = ",
                    )
                    .push_bind(tenant)
                    .push(" AND gc.group_id = ")
                    .push_bind(group),
            };
            push_conditions(&mut count, q);
            Some(count.build_query_scalar().fetch_one(tx.conn()).await?)
        }
        None => None,
    };
    Ok((items, total))
}

/// The statement of [`list`]'s page, appended to `sql` (the tests put `EXPLAIN` before it).
pub fn push_page(sql: &mut QueryBuilder<Postgres>, tenant: Uuid, q: &ListQuery) {
    sql.push("SELECT ");
    match q.group {
        None => {
            sql.push(columns!())
                .push(" FROM contacts WHERE tenant_id = ")
                .push_bind(tenant);
            push_conditions(sql, q);
            if let Some(cursor) = q.cursor {
                sql.push(" AND id < ").push_bind(cursor.id());
            }
            sql.push(" ORDER BY id DESC");
        }
        Some(group) => {
            sql.push(concat!(
                "c.* FROM group_contacts gc CROSS JOIN LATERAL (SELECT ",
                columns!(),
                " FROM contacts WHERE tenant_id = gc.tenant_id AND id = gc.contact_id"
            ));
            push_conditions(sql, q);
            sql.push(" OFFSET 0) c WHERE gc.tenant_id = ")
                .push_bind(tenant)
                .push(" AND gc.group_id = ")
                .push_bind(group);
            if let Some(cursor) = q.cursor {
                sql.push(" AND gc.contact_id < ").push_bind(cursor.id());
            }
            sql.push(" ORDER BY gc.contact_id DESC");
        }
    }
    sql.push(" LIMIT ").push(q.limit.fetch());
    if let Some(offset) = q.offset {
        sql.push(" OFFSET ").push_bind(i64::from(offset.get()));
    }
}

/// What a listed contact satisfies besides its tenant; the names are unambiguous beside
/// `group_contacts`.
fn push_conditions(sql: &mut QueryBuilder<Postgres>, q: &ListQuery) {
    sql.push(" AND deleted_at IS NULL");
    if let Some(term) = &q.search {
        sql.push(format_args!(" AND {SEARCH_TEXT} ILIKE "))
            .push_bind(format!("%{}%", escape_like(term)));
    }
}

pub async fn update(
    tx: &mut TenantTx,
    id: Uuid,
    patch: &ContactPatch,
) -> Result<Option<Contact>, StoreError> {
    let tenant = tx.tenant();
    let phone = patch.phone.as_ref().map(|p| p.as_ref().map(|p| p.as_str()));
    let email = patch.email.as_ref().map(|e| e.as_ref().map(|e| e.as_str()));
    sqlx::query_as(concat!(
        "UPDATE contacts SET
            name = coalesce($3, name),
            phone = CASE WHEN $4 THEN $5 ELSE phone END,
            email = CASE WHEN $6 THEN $7 ELSE email END,
            attributes = coalesce($8, attributes),
            opted_out_at = CASE
                WHEN $9::bool IS NULL THEN opted_out_at
                WHEN $9 THEN coalesce(opted_out_at, now())
            END,
            updated_at = now()
         WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL
         RETURNING ",
        columns!()
    ))
    .bind(tenant)
    .bind(id)
    .bind(patch.name.as_ref().map(|n| n.as_str()))
    .bind(phone.is_some())
    .bind(phone.flatten())
    .bind(email.is_some())
    .bind(email.flatten())
    .bind(patch.attributes.clone().map(|a| a.into_value()))
    .bind(patch.opted_out)
    .fetch_optional(tx.conn())
    .await
    .map_err(conflict)
}

/// Marks `contacts` opted out (a provider said so: Twilio's 21610), keeping the first time.
pub async fn opt_out(tx: &mut TenantTx, contacts: &[Uuid]) -> Result<(), StoreError> {
    if contacts.is_empty() {
        return Ok(());
    }
    let tenant = tx.tenant();
    sqlx::query(
        "UPDATE contacts SET opted_out_at = coalesce(opted_out_at, now()), updated_at = now()
         WHERE tenant_id = $1 AND id = ANY($2)",
    )
    .bind(tenant)
    .bind(contacts)
    .execute(tx.conn())
    .await?;
    Ok(())
}

pub async fn soft_delete(tx: &mut TenantTx, id: Uuid) -> Result<Option<Contact>, StoreError> {
    let tenant = tx.tenant();
    Ok(sqlx::query_as(concat!(
        "UPDATE contacts SET deleted_at = now(), updated_at = now()
         WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL
         RETURNING ",
        columns!()
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(tx.conn())
    .await?)
}

/// Maps the contact constraints to answers that name the field; they are tenant-scoped,
/// so a conflict only ever concerns the caller's own contacts.
fn conflict(err: sqlx::Error) -> StoreError {
    match (db::unique_violation(&err), db::check_violation(&err)) {
        (Some("contacts_phone_live"), _) => {
            StoreError::conflict("a contact with this phone already exists")
        }
        (Some("contacts_email_live"), _) => {
            StoreError::conflict("a contact with this email already exists")
        }
        (_, Some("contacts_reachable")) => {
            StoreError::field("", "a contact needs a phone or an email")
        }
        _ => err.into(),
    }
}

fn escape_like(term: &str) -> String {
    term.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

#[cfg(test)]
mod tests {
    /// `Contact` decodes by position: the statement's columns must be `COLUMNS`, in order.
    #[test]
    fn columns_are_in_the_order_contact_decodes_them() {
        let names: Vec<&str> = columns!()
            .split(',')
            .map(|c| c.split_whitespace().last().unwrap_or_default())
            .collect();
        assert_eq!(names, super::COLUMNS);
    }
}
