//! One delivery attempt: the event as a signed Standard Webhooks request, through the SSRF
//! guard, and what came of it.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode, Url};
use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use super::schedule::parse_retry_after;
use crate::net::egress::{Egress, read_capped};
use crate::webhooks::Secret;
use crate::webhooks::signature::sign;

/// Response bodies are read up to this many bytes, and stored as read.
pub const RESPONSE_CAP: usize = 64 * 1024;

/// A claimed delivery: the event, where it goes and the secrets that sign it.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Delivery {
    pub tenant_id: Uuid,
    pub id: Uuid,
    pub webhook_id: Uuid,
    pub event_id: Uuid,
    pub event_type: String,
    pub payload: Value,
    pub event_created_at: OffsetDateTime,
    /// Who caused the event (absent on events older than actors).
    pub actor: Option<Value>,
    /// This attempt's number (1-based): attempts were counted when the row was claimed.
    pub attempts: i32,
    pub url: String,
    /// Whether the webhook still wants deliveries (enabled, not deleted).
    pub live: bool,
    #[sqlx(try_from = "String")]
    pub secret: Secret,
    /// Only while it has not expired: it signs beside the current one.
    pub previous_secret: Option<String>,
}

/// The request body: the event as WebSocket subscribers receive it (DESIGN.md).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Envelope<'a> {
    id: Uuid,
    #[serde(rename = "type")]
    kind: &'a str,
    tenant_id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    timestamp: OffsetDateTime,
    #[serde(skip_serializing_if = "Option::is_none")]
    actor: Option<&'a Value>,
    payload: &'a Value,
}

impl Delivery {
    /// The body; the same bytes on every attempt, only the timestamp header moves.
    pub fn body(&self) -> Vec<u8> {
        serde_json::to_vec(&Envelope {
            id: self.event_id,
            kind: &self.event_type,
            tenant_id: self.tenant_id,
            timestamp: self.event_created_at,
            actor: self.actor.as_ref(),
            payload: &self.payload,
        })
        .expect("an event serialises")
    }
}

/// What one attempt came to.
#[derive(Clone, Debug, Default)]
pub struct Attempt {
    pub status: Option<u16>,
    pub duration: Duration,
    /// The start of the answer (at most [`RESPONSE_CAP`] bytes, lossily UTF-8).
    pub response: Option<String>,
    pub error: Option<String>,
    /// The receiver's `Retry-After`, heeded on 429, 502 and 504 only.
    pub retry_after: Option<Duration>,
}

impl Attempt {
    /// Standard Webhooks: a 2xx answer is success, anything else (3xx included) failure.
    pub fn succeeded(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }

    /// 410 Gone: the receiver wants no more deliveries.
    pub fn gone(&self) -> bool {
        self.status == Some(StatusCode::GONE.as_u16())
    }

    fn failed(duration: Duration, error: String) -> Attempt {
        Attempt {
            duration,
            error: Some(error),
            ..Attempt::default()
        }
    }
}

/// Sends `delivery` once, signed at the current time.
pub async fn send(egress: &Egress, delivery: &Delivery) -> Attempt {
    let started = Instant::now();
    let url = match Url::parse(&delivery.url) {
        Ok(url) => url,
        Err(e) => return Attempt::failed(started.elapsed(), format!("invalid URL: {e}")),
    };
    let builder = match egress.request(Method::POST, url) {
        Ok(builder) => builder,
        Err(refused) => return Attempt::failed(started.elapsed(), format!("refused: {refused}")),
    };
    let previous = delivery.previous_secret.clone().map(Secret::from);
    let mut secrets = vec![&delivery.secret];
    secrets.extend(previous.as_ref());
    let body = delivery.body();
    let now = OffsetDateTime::now_utc();
    let signed = sign(
        &secrets,
        &delivery.event_id.to_string(),
        now.unix_timestamp(),
        &body,
    );
    let mut builder = builder.header("content-type", "application/json");
    for (name, value) in signed.headers() {
        builder = builder.header(name, value);
    }

    let response = match builder.body(body).send().await {
        Ok(response) => response,
        Err(e) => return Attempt::failed(started.elapsed(), describe(&e)),
    };
    answered(response, started, now).await
}

/// What the receiver's answer comes to: its status, the start of its body, the error that
/// names a failure, and the `Retry-After` heeded on 429, 502 and 504.
async fn answered(response: reqwest::Response, started: Instant, now: OffsetDateTime) -> Attempt {
    let status = response.status();
    let retry_after = matches!(status.as_u16(), 429 | 502 | 504)
        .then(|| response.headers().get("retry-after"))
        .flatten()
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, now));
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let (text, read_error) = match read_capped(response, RESPONSE_CAP).await {
        Ok((bytes, _truncated)) => (Some(stored_text(&bytes)), None),
        Err(e) => (None, Some(describe(&e))),
    };
    let error = if status.is_success() {
        None
    } else if status.is_redirection() {
        Some(format!(
            "HTTP {status}: redirects are not followed{}",
            location.map(|l| format!(" (to {l})")).unwrap_or_default()
        ))
    } else {
        Some(format!("HTTP {status}"))
    };
    Attempt {
        status: Some(status.as_u16()),
        duration: started.elapsed(),
        response: text,
        error: error.or(read_error.filter(|_| !status.is_success())),
        retry_after,
    }
}

/// Text PostgreSQL will store: lossy UTF-8, NUL bytes dropped.
fn stored_text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).replace('\0', "")
}

/// An error with its causes: the guard's refusal sits a few sources down a connect error.
fn describe(error: &reqwest::Error) -> String {
    let mut text = if error.is_timeout() {
        "timed out".to_owned()
    } else if error.is_connect() {
        "could not connect".to_owned()
    } else {
        error.to_string()
    };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text.chars().take(2000).collect()
}
