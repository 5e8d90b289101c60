//! Message templates: the text a campaign sends, rendered per contact.
//!
//! A template's subject (email only) and body are minijinja templates over `contact`
//! (`name`, `phone`, `email`, `attributes.*`) and `campaign` (`name`). They are checked
//! when saved ([`check`]), and the variables they use are stored with them. [`render`] is
//! what the preview and the campaign engine render with.

mod check;
pub mod input;
pub mod render;
mod sandbox;
pub mod store;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::Invalid;

pub use check::{FILTERS, TESTS};
pub use sandbox::{FUEL, MAX_RANGE};

/// How a template's messages travel.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    #[default]
    Sms,
    Email,
}

impl Channel {
    pub fn parse(input: &str) -> Result<Channel, Invalid> {
        match input {
            "sms" => Ok(Channel::Sms),
            "email" => Ok(Channel::Email),
            _ => Err(Invalid::new("must be \"sms\" or \"email\"")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Sms => "sms",
            Channel::Email => "email",
        }
    }
}

impl TryFrom<String> for Channel {
    type Error = Invalid;
    fn try_from(value: String) -> Result<Channel, Invalid> {
        Channel::parse(&value)
    }
}

/// A template as the API shows it and as its events carry it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Template {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    #[sqlx(try_from = "String")]
    pub channel: Channel,
    /// The subject line of an email template, itself a template; `null` for SMS.
    pub subject: Option<String>,
    /// The message, a minijinja template over `contact` and `campaign`.
    pub body: String,
    /// The variables the subject and body use, sorted: paths from `contact` or
    /// `campaign` as a template spells them, e.g. `contact.name`,
    /// `contact.attributes.city`, `contact.attributes["first name"]`,
    /// `contact.attributes.tags[0]`. A lookup with a computed key is listed up to it.
    pub variables: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// Set only in `template_deleted` events.
    #[serde(
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub deleted_at: Option<OffsetDateTime>,
}

crate::domain::page! {
    /// A page of templates.
    TemplatePage of Template,
    total: " Live templates matching the filters; given when paging by `offset`."
}

/// A template rendered for one contact or for sample values.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Preview {
    /// Email only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    pub body: String,
    /// The body's length in characters.
    pub length: usize,
}
