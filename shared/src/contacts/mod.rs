//! Contacts: the people a tenant sends to.

pub mod import;
pub mod input;
pub mod store;

use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

/// A contact as the API shows it and as its events carry it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Contact {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    /// E.164, e.g. `+14155552671`.
    pub phone: Option<String>,
    pub email: Option<String>,
    /// Free-form values for templates.
    #[schema(value_type = Object)]
    pub attributes: serde_json::Value,
    /// Whether the contact asked not to be messaged; campaigns skip it.
    pub opted_out: bool,
    #[serde(with = "time::serde::rfc3339::option")]
    pub opted_out_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// Set only in `contact_deleted` events.
    #[serde(
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub deleted_at: Option<OffsetDateTime>,
}

/// A page of contacts.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContactPage {
    pub items: Vec<Contact>,
    /// Live contacts matching the filters; given when paging by `offset`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<i64>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}
