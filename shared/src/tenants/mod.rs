//! Tenants and their members.
//!
//! Tenants come to exist through `POST /api/tenants` (in AWS) or `herald-local tenant
//! create`; the app role cannot insert them itself, so creation and the cross-tenant
//! "my tenants" list go through the `app.create_tenant` and `app.tenants_of` definer
//! functions (see [`crate::db::Database::create_tenant`]). Members are managed inside the
//! tenant's own transaction, under its row-level security.
//!
//! Member changes emit no outbox event: DESIGN.md's event list has no member type, and
//! inventing one is a design change, not this module's to make.

pub mod store;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::db::StoreError;
use crate::domain::Role;
use crate::domain::{FieldError, Invalid, Name};

/// A tenant as one of its members sees it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Tenant {
    pub id: Uuid,
    pub name: String,
    /// The caller's role in this tenant.
    pub role: Role,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// A tenant as the definer functions return it.
#[derive(Debug, sqlx::FromRow)]
pub struct TenantRow {
    pub id: Uuid,
    pub name: String,
    pub role: String,
    pub created_at: OffsetDateTime,
}

impl TryFrom<TenantRow> for Tenant {
    type Error = StoreError;
    fn try_from(row: TenantRow) -> Result<Tenant, StoreError> {
        Ok(Tenant {
            id: row.id,
            name: row.name,
            role: stored_role(&row.role)?,
            created_at: row.created_at,
        })
    }
}

/// The caller's tenants, oldest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantList {
    pub items: Vec<Tenant>,
}

/// `POST /api/tenants`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateTenant {
    /// 1 to 200 characters, trimmed.
    pub name: String,
}

impl CreateTenant {
    pub fn parse(self) -> Result<Name, Vec<FieldError>> {
        Name::parse(&self.name).map_err(|e| vec![FieldError::new("/name", e.0)])
    }
}

/// One member of the current tenant.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = TenantMember)]
pub struct Member {
    /// The member's token subject.
    pub sub: String,
    pub role: Role,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

#[derive(Debug, sqlx::FromRow)]
pub struct MemberRow {
    pub sub: String,
    pub role: String,
    pub created_at: OffsetDateTime,
}

impl TryFrom<MemberRow> for Member {
    type Error = StoreError;
    fn try_from(row: MemberRow) -> Result<Member, StoreError> {
        Ok(Member {
            role: stored_role(&row.role)?,
            sub: row.sub,
            created_at: row.created_at,
        })
    }
}

crate::domain::page! {
    /// A page of members, by `sub`.
    #[schema(as = TenantMemberPage)]
    MemberPage of Member,
    total: " All members; given when paging by `offset`."
}

/// `PUT /api/tenant/members/{sub}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PutMember {
    /// `owner`, `admin`, `member` or `viewer`.
    #[schema(value_type = Role)]
    pub role: String,
}

impl PutMember {
    pub fn parse(self) -> Result<Role, Vec<FieldError>> {
        self.role.parse::<Role>().map_err(|_| {
            vec![FieldError::new(
                "/role",
                format!(
                    "unknown role {:?}; expected owner, admin, member or viewer",
                    self.role
                ),
            )]
        })
    }
}

/// A member's token subject as the path names it (`{sub}`, percent-decoded by the
/// gateway): any text of 1 to 255 characters, as `tenant_members.sub` holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sub(String);

impl Sub {
    pub const MAX_CHARS: usize = 255;

    pub fn parse(raw: &str) -> Result<Sub, Invalid> {
        match raw.chars().count() {
            1..=Self::MAX_CHARS => Ok(Sub(raw.to_owned())),
            _ => Err(Invalid::new(format!(
                "must be 1 to {} characters",
                Self::MAX_CHARS
            ))),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a members request does to one member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Add the member with this role, or give an existing member this role.
    Set(Role),
    Remove,
}

/// The rules of membership, decided on the current state (read under lock):
/// only owners make, unmake or remove owners, and a tenant always keeps an owner.
/// `owners` counts the tenant's owners, the target included when it is one.
pub fn check_change(
    caller: Role,
    current: Option<Role>,
    change: Change,
    owners: usize,
) -> Result<(), StoreError> {
    let caller_is_owner = caller == Role::Owner;
    if change == Change::Set(Role::Owner) && !caller_is_owner {
        return Err(StoreError::forbidden("only an owner may make an owner"));
    }
    match (current, change) {
        (None, Change::Remove) => Err(StoreError::not_found("member")),
        (
            Some(Role::Owner),
            Change::Remove | Change::Set(Role::Admin | Role::Member | Role::Viewer),
        ) => {
            if !caller_is_owner {
                Err(StoreError::forbidden(
                    "only an owner may demote or remove an owner",
                ))
            } else if owners <= 1 {
                Err(StoreError::conflict(
                    "a tenant keeps at least one owner: make another owner first",
                ))
            } else {
                Ok(())
            }
        }
        _ => Ok(()),
    }
}

fn stored_role(raw: &str) -> Result<Role, StoreError> {
    raw.parse().map_err(|e: String| {
        tracing::error!(error = %e, "unexpected role in tenant_members");
        StoreError::Corrupt(format!("a member has the unknown role {raw:?}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::problem::Kind;

    fn kind(r: Result<(), StoreError>) -> Option<Kind> {
        r.err().map(|e| crate::http::Problem::from(e).kind)
    }

    #[test]
    fn only_owners_touch_owners() {
        use Change::*;
        use Role::*;
        assert_eq!(
            kind(check_change(Admin, None, Set(Owner), 1)),
            Some(Kind::Forbidden)
        );
        assert_eq!(
            kind(check_change(Admin, Some(Admin), Set(Owner), 1)),
            Some(Kind::Forbidden)
        );
        assert_eq!(
            kind(check_change(Admin, Some(Owner), Set(Admin), 2)),
            Some(Kind::Forbidden)
        );
        assert_eq!(
            kind(check_change(Admin, Some(Owner), Remove, 2)),
            Some(Kind::Forbidden)
        );
        assert_eq!(kind(check_change(Admin, Some(Member), Set(Admin), 1)), None);
        assert_eq!(kind(check_change(Admin, None, Set(Viewer), 1)), None);
        assert_eq!(kind(check_change(Admin, Some(Viewer), Remove, 1)), None);
        assert_eq!(kind(check_change(Owner, Some(Admin), Set(Owner), 1)), None);
    }

    #[test]
    fn the_last_owner_stays() {
        use Change::*;
        use Role::*;
        assert_eq!(
            kind(check_change(Owner, Some(Owner), Set(Admin), 1)),
            Some(Kind::Conflict)
        );
        assert_eq!(
            kind(check_change(Owner, Some(Owner), Remove, 1)),
            Some(Kind::Conflict)
        );
        assert_eq!(kind(check_change(Owner, Some(Owner), Remove, 2)), None);
        assert_eq!(kind(check_change(Owner, Some(Owner), Set(Owner), 1)), None);
        assert_eq!(
            kind(check_change(Owner, None, Remove, 1)),
            Some(Kind::NotFound)
        );
    }

    #[test]
    fn subs_are_bounded() {
        assert!(Sub::parse("auth0|abc").is_ok());
        assert!(Sub::parse(&"é".repeat(255)).is_ok());
        assert!(Sub::parse("").is_err());
        assert!(Sub::parse(&"x".repeat(256)).is_err());
    }
}
