//! Webhook input as sent, and as parsed into valid values.

use reqwest::Url;
use serde::Deserialize;
use uuid::Uuid;

use crate::domain::nullable;
use crate::domain::{FieldError, FieldErrors, Invalid};
use crate::events::EventType;

/// `POST /api/webhooks`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateWebhook {
    /// An absolute `https` URL to a public address; plain `http` and private addresses
    /// only where `HERALD_EGRESS_ALLOW` names them (local development). No credentials, no
    /// fragment; at most 2048 characters.
    pub url: String,
    /// At least one event type of DESIGN.md's list; repeats are dropped.
    pub event_types: Vec<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// Default `true`.
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// `PATCH /api/webhooks/{id}`: absent fields stay as they are; `description: null`
/// clears it; `eventTypes` replaces the whole list; `enabled: true` also clears a
/// `disabledReason`. The secret changes only through `POST /api/webhooks/{id}/secret`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateWebhook {
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub event_types: Option<Vec<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// A webhook ready to insert (its secret is generated apart).
#[derive(Debug, Clone)]
pub struct NewWebhook {
    pub id: Uuid,
    pub url: WebhookUrl,
    pub event_types: EventTypes,
    pub description: Option<Description>,
    pub enabled: bool,
}

/// A validated change to a webhook.
#[derive(Debug, Default)]
pub struct WebhookPatch {
    pub url: Option<WebhookUrl>,
    pub event_types: Option<EventTypes>,
    pub description: Option<Option<Description>>,
    pub enabled: Option<bool>,
}

/// A delivery target, well formed: `http` or `https`, a host, no credentials, no fragment.
/// Where it may point (public addresses, `https` unless allow-listed) is the egress
/// policy's to say: [`super::target::check`] when it is saved, the guard at delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl(String);

impl WebhookUrl {
    pub const MAX_CHARS: usize = 2048;

    pub fn parse(input: &str) -> Result<WebhookUrl, Invalid> {
        let trimmed = input.trim();
        if trimmed.chars().count() > Self::MAX_CHARS {
            return Err(Invalid::new(format!(
                "must be at most {} characters",
                Self::MAX_CHARS
            )));
        }
        let url = Url::parse(trimmed).map_err(|_| {
            Invalid::new("must be an absolute URL, such as https://example.com/hooks")
        })?;
        // The parser has already normalised IP literals (`127.1`, `0x7f.0.0.1`, `[::1]`).
        if url.host_str().is_none() {
            return Err(Invalid::new("must name a host"));
        }
        if !matches!(url.scheme(), "https" | "http") {
            return Err(Invalid::new("must be an https URL"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Invalid::new(
                "must not contain credentials; authenticate deliveries by their signature",
            ));
        }
        if url.fragment().is_some() {
            return Err(Invalid::new("must not have a fragment (#…)"));
        }
        let normalised = String::from(url);
        if normalised.chars().count() > Self::MAX_CHARS {
            return Err(Invalid::new(format!(
                "must be at most {} characters",
                Self::MAX_CHARS
            )));
        }
        Ok(WebhookUrl(normalised))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A non-empty set of known event types, in the order first given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventTypes(Vec<EventType>);

impl EventTypes {
    /// Checks every element; each unknown one is its own error, located at
    /// `{pointer}/{index}`.
    pub fn parse(pointer: &str, input: &[String]) -> Result<EventTypes, Vec<FieldError>> {
        if input.is_empty() {
            return Err(vec![FieldError::new(
                pointer,
                "must list at least one event type",
            )]);
        }
        let mut types = Vec::new();
        let mut errors = Vec::new();
        for (i, name) in input.iter().enumerate() {
            match EventType::parse(name) {
                Some(t) if !types.contains(&t) => types.push(t),
                Some(_) => {}
                // Past a few, more of the same error helps nobody.
                None if errors.len() < 20 => errors.push(FieldError::new(
                    format!("{pointer}/{i}"),
                    format!("unknown event type {name:?}; expected one of {}", known()),
                )),
                None => {}
            }
        }
        if errors.is_empty() {
            Ok(EventTypes(types))
        } else {
            Err(errors)
        }
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.0.iter().map(|t| t.as_str()).collect()
    }
}

fn known() -> String {
    EventType::ALL
        .iter()
        .map(|t| t.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Free text of at most 2000 characters, trimmed; blank means none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Description(String);

impl Description {
    pub const MAX_CHARS: usize = 2000;

    pub fn parse(input: &str) -> Result<Option<Description>, Invalid> {
        let trimmed = input.trim();
        if trimmed.chars().count() > Self::MAX_CHARS {
            return Err(Invalid::new(format!(
                "must be at most {} characters",
                Self::MAX_CHARS
            )));
        }
        Ok((!trimmed.is_empty()).then(|| Description(trimmed.to_owned())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl NewWebhook {
    pub fn parse(input: CreateWebhook) -> Result<NewWebhook, Vec<FieldError>> {
        let mut errors = FieldErrors::default();
        let url = errors.check("/url", WebhookUrl::parse(&input.url));
        let event_types = errors.check_all(EventTypes::parse("/eventTypes", &input.event_types));
        let description = match input.description.as_deref() {
            Some(d) => errors.check("/description", Description::parse(d)),
            None => Some(None),
        };
        errors.finish(|| NewWebhook {
            id: Uuid::now_v7(),
            url: url.expect("checked"),
            event_types: event_types.expect("checked"),
            description: description.expect("checked"),
            enabled: input.enabled.unwrap_or(true),
        })
    }
}

impl WebhookPatch {
    pub fn parse(input: UpdateWebhook) -> Result<WebhookPatch, Vec<FieldError>> {
        let mut errors = FieldErrors::default();
        if input.url.is_none()
            && input.event_types.is_none()
            && input.description.is_none()
            && input.enabled.is_none()
        {
            errors.push("", "the patch changes nothing");
        }
        let url = input
            .url
            .map(|u| errors.check("/url", WebhookUrl::parse(&u)));
        let event_types = input
            .event_types
            .map(|t| errors.check_all(EventTypes::parse("/eventTypes", &t)));
        let description = input.description.map(|d| match d {
            Some(d) => errors.check("/description", Description::parse(&d)),
            None => Some(None),
        });
        errors.finish(|| WebhookPatch {
            url: url.map(|u| u.expect("checked")),
            event_types: event_types.map(|t| t.expect("checked")),
            description: description.map(|d| d.expect("checked")),
            enabled: input.enabled,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_formed_http_and_https_urls_only() {
        // Where they point is the egress policy's question (`target::check`).
        for good in [
            "https://example.com/hooks",
            "  https://hooks.example.com:8443/a?b=c ",
            "http://localhost:9000/hook",
            "http://127.0.0.1:8080/",
            "http://[::1]:3000/x",
        ] {
            assert!(WebhookUrl::parse(good).is_ok(), "{good:?} was refused");
        }
        for bad in [
            "",
            "example.com/hooks",
            "/hooks",
            "ftp://example.com/",
            "file:///etc/passwd",
            "javascript:alert(1)",
            "https://user:pass@example.com/",
            "https://token@example.com/",
            "https://example.com/#frag",
        ] {
            assert!(WebhookUrl::parse(bad).is_err(), "{bad:?} was accepted");
        }
        let long = format!("https://example.com/{}", "a".repeat(2048));
        assert!(WebhookUrl::parse(&long).is_err());
    }

    #[test]
    fn event_types_are_known_deduplicated_and_located() {
        let ok = EventTypes::parse(
            "/eventTypes",
            &[
                "contact_created".into(),
                "webhook_triggered".into(),
                "contact_created".into(),
            ],
        )
        .unwrap();
        assert_eq!(ok.names(), ["contact_created", "webhook_triggered"]);

        let errors = EventTypes::parse(
            "/eventTypes",
            &["contact_created".into(), "contact_exploded".into()],
        )
        .unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].pointer, "/eventTypes/1");
        assert!(errors[0].detail.contains("contact_exploded"));

        assert_eq!(
            EventTypes::parse("/eventTypes", &[]).unwrap_err()[0].pointer,
            "/eventTypes"
        );
    }
}
