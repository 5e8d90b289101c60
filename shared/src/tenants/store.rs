//! Member SQL, inside the tenant's own transaction: `tenant_members`' row-level security
//! binds every statement here to the current tenant.
//!
//! Changes that could take away an owner are serialised by [`lock_owners`]: every such
//! request locks the tenant's owner rows (in `sub` order, so two requests never deadlock)
//! before reading the state it decides on.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sqlx::{Postgres, QueryBuilder};

use super::{Member, MemberRow, Sub};
use crate::db::StoreError;
use crate::db::TenantTx;
use crate::domain::Role;
use crate::domain::{Invalid, Limit, Offset};

/// An opaque keyset cursor over members: the last `sub` of the previous page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberCursor(String);

impl MemberCursor {
    pub fn after(sub: &str) -> MemberCursor {
        MemberCursor(sub.to_owned())
    }

    pub fn parse(raw: &str) -> Result<MemberCursor, Invalid> {
        URL_SAFE_NO_PAD
            .decode(raw)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .filter(|s| Sub::parse(s).is_ok())
            .map(MemberCursor)
            .ok_or_else(|| Invalid::new("is not a cursor this API issued"))
    }

    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0.as_bytes())
    }
}

pub struct MemberQuery {
    pub limit: Limit,
    pub offset: Option<Offset>,
    pub cursor: Option<MemberCursor>,
}

/// One page of members by `sub` (the primary key's order), plus the total when paging by
/// offset. Fetches one row beyond the page.
pub async fn list(
    tx: &mut TenantTx,
    q: &MemberQuery,
) -> Result<(Vec<Member>, Option<i64>), StoreError> {
    let tenant = tx.tenant();
    let mut page = QueryBuilder::<Postgres>::new(
        "SELECT sub, role, created_at FROM tenant_members WHERE tenant_id = ",
    );
    page.push_bind(tenant);
    if let Some(cursor) = &q.cursor {
        page.push(" AND sub > ").push_bind(cursor.0.clone());
    }
    // The comparison and the sort share the column's collation, so pages never overlap.
    page.push(" ORDER BY sub LIMIT ").push(q.limit.fetch());
    if let Some(offset) = q.offset {
        page.push(" OFFSET ").push_bind(i64::from(offset.get()));
    }
    let rows: Vec<MemberRow> = page.build_query_as().fetch_all(tx.conn()).await?;
    let items = rows
        .into_iter()
        .map(Member::try_from)
        .collect::<Result<_, _>>()?;

    let total = match q.offset {
        Some(_) => Some(
            sqlx::query_scalar("SELECT count(*) FROM tenant_members WHERE tenant_id = $1")
                .bind(tenant)
                .fetch_one(tx.conn())
                .await?,
        ),
        None => None,
    };
    Ok((items, total))
}

/// Locks the tenant's owner rows until the transaction ends and returns how many there
/// are. A concurrent request doing the same waits here, then sees this one's outcome
/// (READ COMMITTED re-checks `role = 'owner'` on rows changed meanwhile).
pub async fn lock_owners(tx: &mut TenantTx) -> Result<usize, StoreError> {
    let tenant = tx.tenant();
    let owners: Vec<String> = sqlx::query_scalar(
        "SELECT sub FROM tenant_members WHERE tenant_id = $1 AND role = 'owner'
         ORDER BY sub FOR UPDATE",
    )
    .bind(tenant)
    .fetch_all(tx.conn())
    .await?;
    Ok(owners.len())
}

/// The member's current role, locking its row until the transaction ends.
pub async fn role_for_update(tx: &mut TenantTx, sub: &Sub) -> Result<Option<Role>, StoreError> {
    let tenant = tx.tenant();
    let role: Option<String> = sqlx::query_scalar(
        "SELECT role FROM tenant_members WHERE tenant_id = $1 AND sub = $2 FOR UPDATE",
    )
    .bind(tenant)
    .bind(sub.as_str())
    .fetch_optional(tx.conn())
    .await?;
    role.map(|r| super::stored_role(&r)).transpose()
}

/// Adds a member; `None` when a concurrent request added the same `sub` first.
pub async fn insert(
    tx: &mut TenantTx,
    sub: &Sub,
    role: Role,
) -> Result<Option<Member>, StoreError> {
    let tenant = tx.tenant();
    let row: Option<MemberRow> = sqlx::query_as(
        "INSERT INTO tenant_members (tenant_id, sub, role) VALUES ($1, $2, $3)
         ON CONFLICT (tenant_id, sub) DO NOTHING
         RETURNING sub, role, created_at",
    )
    .bind(tenant)
    .bind(sub.as_str())
    .bind(role.as_str())
    .fetch_optional(tx.conn())
    .await?;
    row.map(Member::try_from).transpose()
}

/// Gives an existing (locked) member a role.
pub async fn set_role(tx: &mut TenantTx, sub: &Sub, role: Role) -> Result<Member, StoreError> {
    let tenant = tx.tenant();
    let row: MemberRow = sqlx::query_as(
        "UPDATE tenant_members SET role = $3 WHERE tenant_id = $1 AND sub = $2
         RETURNING sub, role, created_at",
    )
    .bind(tenant)
    .bind(sub.as_str())
    .bind(role.as_str())
    .fetch_one(tx.conn())
    .await?;
    Member::try_from(row)
}

/// Removes an existing (locked) member.
pub async fn remove(tx: &mut TenantTx, sub: &Sub) -> Result<(), StoreError> {
    let tenant = tx.tenant();
    sqlx::query("DELETE FROM tenant_members WHERE tenant_id = $1 AND sub = $2")
        .bind(tenant)
        .bind(sub.as_str())
        .execute(tx.conn())
        .await?;
    Ok(())
}
