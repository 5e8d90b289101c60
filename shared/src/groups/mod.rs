//! Groups: named sets of a tenant's contacts that campaigns send to.
//!
//! Membership rows live in `group_contacts`; `groups.member_count` is kept exact by the
//! statements that add and remove them, each under the group's row lock (see [`store`]).

pub mod input;
pub mod store;

use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::contacts::Contact;

/// A group as the API shows it and as its events carry it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Group {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub description: Option<String>,
    /// Live contacts in the group.
    pub member_count: i32,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// Set only in `group_deleted` events.
    #[serde(
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub deleted_at: Option<OffsetDateTime>,
}

crate::domain::page! {
    /// A page of groups.
    GroupPage of Group,
    total: " Live groups; given when paging by `offset`."
}

/// A contact in a group, with when it joined.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = GroupMember)]
pub struct Member {
    #[serde(flatten)]
    #[sqlx(flatten)]
    pub contact: Contact,
    #[serde(with = "time::serde::rfc3339")]
    pub added_at: OffsetDateTime,
}

/// A page of a group's members, newest contact first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = GroupMemberPage)]
pub struct MemberPage {
    pub items: Vec<Member>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// The answer to `POST /api/groups/{id}/contacts`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AddReport {
    /// Memberships this request created.
    pub added: usize,
    /// Ids that were members already (left as they were), in request order.
    pub already_members: Vec<Uuid>,
    /// Ids that name no live contact of this tenant (unknown, deleted or another
    /// tenant's), in request order; none of them was added.
    pub not_found: Vec<Uuid>,
    /// The group after the change, with its new `memberCount`.
    pub group: Group,
}

/// The answer to `DELETE /api/groups/{id}/contacts`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RemoveReport {
    /// Memberships this request removed.
    pub removed: usize,
    /// Ids that were not members of the group, in request order.
    pub not_members: Vec<Uuid>,
    /// The group after the change, with its new `memberCount`.
    pub group: Group,
}
