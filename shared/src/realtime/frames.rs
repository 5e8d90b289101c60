//! What travels over a WebSocket: the event frames Herald sends, and the client's messages
//! (`ping`, `subscribe`) with Herald's answers.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::events::EventType;

/// One event as subscribers receive it (DESIGN.md, WebSocket events).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventFrame<'a> {
    pub id: Uuid,
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub tenant_id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    pub timestamp: OffsetDateTime,
    /// Who caused the event (absent on events older than actors).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<&'a Value>,
    pub payload: &'a Value,
}

/// A client's message, parsed once.
#[derive(Debug, PartialEq)]
pub enum Command {
    Ping,
    /// Receive only these types from now on.
    Subscribe(Vec<EventType>),
}

#[derive(Deserialize)]
struct Raw {
    action: String,
    #[serde(default)]
    types: Option<Vec<String>>,
}

impl Command {
    /// Parses a text frame; the error is the message to send back.
    pub fn parse(body: &str) -> Result<Command, String> {
        let raw: Raw = serde_json::from_str(body).map_err(|_| {
            "messages are JSON objects with an `action`: `ping` or `subscribe`".to_owned()
        })?;
        match raw.action.as_str() {
            "ping" => Ok(Command::Ping),
            "subscribe" => {
                let names = raw
                    .types
                    .filter(|t| !t.is_empty())
                    .ok_or("`subscribe` needs `types`, a non-empty list of event types")?;
                let mut types = Vec::with_capacity(names.len());
                for name in &names {
                    let kind = EventType::parse(name)
                        .ok_or_else(|| format!("`{name}` is not an event type"))?;
                    if !types.contains(&kind) {
                        types.push(kind);
                    }
                }
                Ok(Command::Subscribe(types))
            }
            other => Err(format!(
                "unknown action `{other}`; expected `ping` or `subscribe`"
            )),
        }
    }
}

/// The answer to `ping`.
pub fn pong() -> Value {
    json!({ "type": "pong", "timestamp": now() })
}

/// The answer to `subscribe`: the types now received.
pub fn subscribed(types: &[EventType]) -> Value {
    json!({ "type": "subscribed", "types": types.iter().map(|t| t.as_str()).collect::<Vec<_>>() })
}

/// The answer to a message Herald could not act on.
pub fn error(message: &str) -> Value {
    json!({ "type": "error", "message": message })
}

fn now() -> String {
    OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ping_and_subscribe() {
        assert_eq!(Command::parse(r#"{"action":"ping"}"#), Ok(Command::Ping));
        assert_eq!(
            Command::parse(
                r#"{"action":"subscribe","types":["contact_created","contact_created","group_deleted"]}"#
            ),
            Ok(Command::Subscribe(vec![
                EventType::ContactCreated,
                EventType::GroupDeleted
            ]))
        );
        assert!(Command::parse(r#"{"action":"subscribe","types":[]}"#).is_err());
        assert!(
            Command::parse(r#"{"action":"subscribe","types":["nope"]}"#)
                .unwrap_err()
                .contains("nope")
        );
        assert!(Command::parse(r#"{"action":"dance"}"#).is_err());
        assert!(Command::parse("not json").is_err());
    }
}
