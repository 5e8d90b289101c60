//! Messages history: every message a tenant sent or is sending, and its delivery status.
//! History is never deleted: messages of a deleted contact or campaign stay listed.

pub mod input;
pub mod status;
pub mod store;

use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

pub use status::{CounterDelta, Ignored, MessageStatus, advance};

/// How a message travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = MessageChannel)]
pub enum Channel {
    Sms,
    Email,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Sms => "sms",
            Channel::Email => "email",
        }
    }

    pub fn parse(raw: &str) -> Option<Channel> {
        [Channel::Sms, Channel::Email]
            .into_iter()
            .find(|c| c.as_str() == raw)
    }
}

impl TryFrom<String> for Channel {
    type Error = String;
    fn try_from(raw: String) -> Result<Channel, String> {
        Channel::parse(&raw).ok_or_else(|| format!("unknown channel {raw:?}"))
    }
}

/// A message as the API shows it and as its events carry it. Each status has the time the
/// message reached it; `null` for a status it has not reached (or skipped).
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    pub id: Uuid,
    pub tenant_id: Uuid,
    /// The campaign that sent it; `null` for a direct message.
    pub campaign_id: Option<Uuid>,
    pub contact_id: Uuid,
    #[sqlx(try_from = "String")]
    pub channel: Channel,
    /// The phone (sms) or email (email) it went to, as it was when queued.
    pub recipient: String,
    /// The text sent. A campaign message is rendered for its contact when the sender takes
    /// it, so a queued one shows an empty body.
    pub body: String,
    #[sqlx(try_from = "String")]
    pub status: MessageStatus,
    /// Why it failed.
    pub error: Option<String>,
    /// The delivery provider's id for it.
    pub provider_message_id: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub queued_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub sending_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub sent_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub delivered_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub read_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub failed_at: Option<OffsetDateTime>,
    /// The time in the message's id (a UUIDv7), to the millisecond.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

crate::domain::page! {
    /// A page of messages.
    MessagePage of Message,
    total: " Messages matching the filters; given when paging by `offset`."
}

/// The answer to `POST /api/messages/{id}/status`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = MessageStatusUpdateResult)]
pub struct StatusUpdateResult {
    /// Whether the update moved the message forward. A late update that would move it
    /// backwards or sideways is not applied.
    pub applied: bool,
    /// The message as it now is.
    pub message: Message,
    /// The status it moved from, when applied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<MessageStatus>,
    /// Why the update was ignored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The payload of `message_status_changed`.
#[derive(Debug, Serialize)]
pub struct StatusChanged<'a> {
    pub message: &'a Message,
    pub from: MessageStatus,
    pub to: MessageStatus,
}
