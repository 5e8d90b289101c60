//! Webhooks: where a tenant's events are delivered, signed with a per-webhook secret.

pub mod delivery;
pub mod input;
pub mod secret;
pub mod signature;
pub mod store;
pub mod target;

use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

pub use secret::Secret;

/// A webhook as stored. Not `Serialize`: it holds the secret. The API and the events show
/// a [`Webhook`], built by [`WebhookRow::masked`] or [`WebhookRow::revealed`].
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WebhookRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub url: String,
    pub description: Option<String>,
    pub event_types: Vec<String>,
    pub enabled: bool,
    #[sqlx(try_from = "String")]
    pub secret: Secret,
    /// Only while the previous secret still signs (see `store`).
    pub previous_secret_expires_at: Option<OffsetDateTime>,
    pub disabled_reason: Option<String>,
    pub failing_since: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub deleted_at: Option<OffsetDateTime>,
}

impl WebhookRow {
    /// What every answer and every event shows: the secret masked.
    pub fn masked(&self) -> Webhook {
        self.view(self.secret.masked())
    }

    /// Only for the answers to create and regenerate: the secret in full.
    pub fn revealed(&self) -> Webhook {
        self.view(self.secret.expose().to_owned())
    }

    fn view(&self, secret: String) -> Webhook {
        Webhook {
            id: self.id,
            tenant_id: self.tenant_id,
            url: self.url.clone(),
            description: self.description.clone(),
            event_types: self.event_types.clone(),
            enabled: self.enabled,
            secret,
            previous_secret_expires_at: self.previous_secret_expires_at,
            disabled_reason: self.disabled_reason.clone(),
            failing_since: self.failing_since,
            created_at: self.created_at,
            updated_at: self.updated_at,
            deleted_at: self.deleted_at,
        }
    }
}

/// A webhook as the API shows it and as its events carry it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    pub id: Uuid,
    pub tenant_id: Uuid,
    /// Where events are POSTed: `https` to a public address, or where `HERALD_EGRESS_ALLOW`
    /// permits.
    pub url: String,
    pub description: Option<String>,
    /// The event types delivered, from DESIGN.md's list (e.g. `contact_created`).
    pub event_types: Vec<String>,
    pub enabled: bool,
    /// The signing secret: `whsec_` plus base64. In full only in the answers to create
    /// and to `POST /api/webhooks/{id}/secret`; elsewhere masked, e.g. `whsec_…abcd`.
    pub secret: String,
    /// After a regeneration, until when the previous secret still signs deliveries.
    #[serde(
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub previous_secret_expires_at: Option<OffsetDateTime>,
    /// Why deliveries stopped, when Herald disabled the webhook itself.
    pub disabled_reason: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub failing_since: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// Set only in `webhook_deleted` events.
    #[serde(
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub deleted_at: Option<OffsetDateTime>,
}

crate::domain::page! {
    /// A page of webhooks.
    WebhookPage of Webhook,
    total: " Live webhooks; given when paging by `offset`."
}

/// One delivery attempt of one event to one webhook.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookLog {
    pub id: Uuid,
    pub webhook_id: Uuid,
    pub event_id: Uuid,
    pub event_type: String,
    /// 1 for the first try, then counting retries.
    pub attempt: i32,
    /// The receiver's HTTP status; absent when no answer came.
    pub status_code: Option<i32>,
    pub duration_ms: Option<i32>,
    /// The start of the receiver's answer.
    pub response_body: Option<String>,
    /// Why the attempt failed (timeout, refused connection, non-2xx…).
    pub error: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

crate::domain::page! {
    /// A page of delivery logs, newest first.
    WebhookLogPage of WebhookLog,
    total: " The webhook's logs; given when paging by `offset`."
}
