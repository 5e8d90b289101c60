//! Message input as sent, and as parsed into domain types.

use serde::Deserialize;
use uuid::Uuid;

use super::{Channel, MessageStatus};
use crate::domain::{FieldError, Invalid};
use crate::domain::{FieldErrors, parse_uuid};

/// The longest body the schema takes, in characters.
pub const MAX_BODY: usize = 20_000;

/// `POST /api/messages`: a direct message to one contact, queued for sending.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateMessage {
    /// A live contact of the tenant that has not opted out.
    #[schema(format = Uuid)]
    pub contact_id: String,
    /// 1 to 20,000 characters.
    pub body: String,
    /// `sms` (to the contact's phone) or `email` (to its email); by default `sms` when the
    /// contact has a phone, else `email`.
    #[serde(default)]
    #[schema(value_type = Option<Channel>)]
    pub channel: Option<String>,
}

/// `POST /api/messages/{id}/status`, typically from the delivery provider's callback.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = MessageStatusUpdate)]
pub struct UpdateStatus {
    #[schema(value_type = MessageStatus)]
    pub status: String,
    /// Why it failed: required with `failed`, refused with any other status.
    #[serde(default)]
    pub error: Option<String>,
    /// The provider's id for the message (at most 255 characters).
    #[serde(default)]
    pub provider_message_id: Option<String>,
}

/// A direct message ready to be addressed (its contact still to be checked).
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub id: Uuid,
    pub contact_id: Uuid,
    pub body: String,
    pub channel: Option<Channel>,
}

/// A validated status report.
#[derive(Debug, Clone)]
pub struct StatusReport {
    pub status: MessageStatus,
    pub error: Option<String>,
    pub provider_message_id: Option<String>,
}

fn text(raw: &str, max: usize, what: &str) -> Result<(), Invalid> {
    if raw.trim().is_empty() {
        return Err(Invalid::new("must not be empty"));
    }
    if raw.chars().count() > max {
        return Err(Invalid::new(format!("must be at most {max} characters")));
    }
    // PostgreSQL text cannot hold NUL; other control characters are fine in a message.
    if raw.contains('\0') {
        return Err(Invalid::new(format!(
            "{what} must not contain NUL characters"
        )));
    }
    Ok(())
}

fn parse_channel(raw: &str) -> Result<Channel, Invalid> {
    Channel::parse(raw).ok_or_else(|| Invalid::new("must be sms or email"))
}

impl NewMessage {
    pub fn parse(input: CreateMessage) -> Result<NewMessage, Vec<FieldError>> {
        let mut errors = FieldErrors::default();
        let contact_id = errors.check("/contactId", parse_uuid(&input.contact_id));
        errors.check("/body", text(&input.body, MAX_BODY, "the body"));
        let channel = input
            .channel
            .as_deref()
            .map(|c| errors.check("/channel", parse_channel(c)));
        errors.finish(|| NewMessage {
            id: Uuid::now_v7(),
            contact_id: contact_id.expect("checked"),
            body: input.body,
            channel: channel.map(|c| c.expect("checked")),
        })
    }
}

impl StatusReport {
    pub fn parse(input: UpdateStatus) -> Result<StatusReport, Vec<FieldError>> {
        let mut errors = FieldErrors::default();
        let status = errors.check(
            "/status",
            MessageStatus::parse(&input.status).ok_or_else(|| {
                Invalid::new(
                    "must be one of queued, sending, sent, delivered, read, failed, cancelled",
                )
            }),
        );
        match (&input.error, status) {
            (Some(e), Some(MessageStatus::Failed)) => {
                errors.check("/error", text(e, 2000, "the error"));
            }
            (None, Some(MessageStatus::Failed)) => {
                errors.push("/error", "is required when the status is failed")
            }
            (Some(_), Some(_)) => errors.push("/error", "is only for the status failed"),
            _ => {}
        }
        if let Some(id) = &input.provider_message_id {
            let checked = text(id, 255, "the id").and_then(|()| {
                if id.chars().any(char::is_control) {
                    Err(Invalid::new("must not contain control characters"))
                } else {
                    Ok(())
                }
            });
            errors.check("/providerMessageId", checked);
        }
        errors.finish(|| StatusReport {
            status: status.expect("checked"),
            error: input.error,
            provider_message_id: input.provider_message_id.map(|id| id.trim().to_owned()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(status: &str, error: Option<&str>) -> Result<StatusReport, Vec<FieldError>> {
        StatusReport::parse(UpdateStatus {
            status: status.into(),
            error: error.map(Into::into),
            provider_message_id: None,
        })
    }

    #[test]
    fn failed_needs_an_error_and_nothing_else_takes_one() {
        assert!(report("failed", Some("carrier rejected")).is_ok());
        assert_eq!(report("failed", None).unwrap_err()[0].pointer, "/error");
        assert_eq!(report("sent", Some("x")).unwrap_err()[0].pointer, "/error");
        assert_eq!(report("lost", None).unwrap_err()[0].pointer, "/status");
        assert!(report("delivered", None).is_ok());
    }

    #[test]
    fn bodies_are_bounded() {
        let message = |body: String| {
            NewMessage::parse(CreateMessage {
                contact_id: Uuid::now_v7().to_string(),
                body,
                channel: None,
            })
        };
        assert!(message("Hi".into()).is_ok());
        assert!(message("x".repeat(MAX_BODY)).is_ok());
        for bad in [" \n".to_owned(), "x".repeat(MAX_BODY + 1), "a\0b".into()] {
            assert_eq!(message(bad).unwrap_err()[0].pointer, "/body");
        }
    }
}
