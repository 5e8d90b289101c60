//! Campaigns: a template sent to a group, now or on a schedule.

pub mod input;
pub mod status;
pub mod store;

use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

pub use status::{Action, IllegalTransition, Status, transition};

/// A campaign as the API shows it and as its events carry it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Campaign {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub template_id: Uuid,
    pub group_id: Uuid,
    #[sqlx(try_from = "String")]
    pub status: Status,
    /// When `start` should make it run; `start` before then schedules it.
    #[serde(with = "time::serde::rfc3339::option")]
    pub scheduled_at: Option<OffsetDateTime>,
    /// When it first started running.
    #[serde(with = "time::serde::rfc3339::option")]
    pub started_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub completed_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub cancelled_at: Option<OffsetDateTime>,
    /// Contacts the campaign sends to (set when it starts sending).
    pub recipients_count: i32,
    /// Messages queued for this campaign, ever.
    pub queued_count: i32,
    /// Messages that reached `sent` (or went beyond it).
    pub sent_count: i32,
    /// Messages that reached `delivered` (or `read`).
    pub delivered_count: i32,
    pub read_count: i32,
    pub failed_count: i32,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// Set only in `campaign_deleted` events.
    #[serde(
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub deleted_at: Option<OffsetDateTime>,
}

crate::domain::page! {
    /// A page of campaigns.
    CampaignPage of Campaign,
    total: " Live campaigns matching the filters; given when paging by `offset`."
}

/// The payload of `campaign_status_changed`.
#[derive(Debug, Serialize)]
pub struct StatusChanged<'a> {
    pub campaign: &'a Campaign,
    pub from: Status,
    pub to: Status,
}
