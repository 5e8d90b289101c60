//! The `http` provider: one JSON POST per message to the tenant's endpoint, signed with the
//! Standard Webhooks headers exactly as webhook deliveries are (`webhook-id` is the message
//! id, also sent as `Idempotency-Key`).
//!
//! The endpoint answers 2xx when it took the message (optionally `{"id": "..."}`, its own
//! id); 408, 425, 429 and 5xx mean "try again later"; any other 4xx fails the message, and
//! a 4xx whose JSON body has `"code": "opted_out"` also marks the contact opted out.

use reqwest::{Method, Url};
use serde_json::{Value, json};

use super::{Delivery, Outgoing, Provider, ProviderConfig, SendFuture};
use crate::net::egress::{Egress, read_capped};
use crate::webhooks::secret::Secret;
use crate::webhooks::signature;

pub struct HttpProvider {
    egress: Egress,
    url: Option<Url>,
    secret: Option<Secret>,
}

impl HttpProvider {
    pub fn new(egress: Egress, config: &ProviderConfig) -> HttpProvider {
        HttpProvider {
            egress,
            url: config.url.as_deref().and_then(|u| Url::parse(u).ok()),
            secret: config.secret().map(|s| Secret::from(s.expose().to_owned())),
        }
    }
}

/// The JSON the endpoint receives.
pub fn payload(m: &Outgoing) -> Value {
    json!({
        "id": m.id,
        "tenantId": m.tenant_id,
        "campaignId": m.campaign_id,
        "contactId": m.contact_id,
        "channel": m.channel.as_str(),
        "to": m.recipient,
        "subject": m.subject,
        "body": m.body,
    })
}

/// How an HTTP status (and body) from a provider reads.
pub fn classify(status: u16, body: &[u8]) -> Delivery {
    let json: Option<Value> = serde_json::from_slice(body).ok();
    match status {
        200..=299 => Delivery::Sent {
            provider_id: json
                .as_ref()
                .and_then(|j| j.get("id"))
                .and_then(Value::as_str)
                .map(|s| s.chars().take(255).collect()),
        },
        408 | 425 | 429 | 500..=599 => {
            Delivery::Transient(format!("the provider answered {status}"))
        }
        _ if json
            .as_ref()
            .and_then(|j| j.get("code"))
            .and_then(Value::as_str)
            == Some("opted_out") =>
        {
            Delivery::OptedOut(format!(
                "the provider answered {status}: the recipient opted out"
            ))
        }
        _ => Delivery::Permanent(format!("the provider answered {status}")),
    }
}

impl Provider for HttpProvider {
    fn send<'a>(&'a self, m: &'a Outgoing) -> SendFuture<'a> {
        Box::pin(async move {
            let (Some(url), Some(secret)) = (&self.url, &self.secret) else {
                return Delivery::Permanent("the http provider is not configured".into());
            };
            let body = serde_json::to_vec(&payload(m)).unwrap_or_default();
            let id = m.id.to_string();
            let timestamp = time::OffsetDateTime::now_utc().unix_timestamp();
            let signed = signature::sign(&[secret], &id, timestamp, &body);
            let mut request = match self.egress.request(Method::POST, url.clone()) {
                Ok(r) => r,
                Err(refused) => return Delivery::Permanent(format!("refused: {refused}")),
            };
            for (name, value) in signed.headers() {
                request = request.header(name, value);
            }
            let sent = request
                .header("idempotency-key", &id)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await;
            match sent {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let body = read_capped(response, 4096)
                        .await
                        .map(|(b, _)| b)
                        .unwrap_or_default();
                    classify(status, &body)
                }
                Err(e) if e.is_connect() && format!("{e:?}").contains("not a public address") => {
                    Delivery::Permanent("refused: the endpoint is not a public address".into())
                }
                Err(e) => Delivery::Transient(format!("the request failed: {}", e.without_url())),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_read_as_outcomes() {
        assert_eq!(
            classify(202, br#"{"id":"p-1"}"#),
            Delivery::Sent {
                provider_id: Some("p-1".into())
            }
        );
        assert!(matches!(classify(503, b""), Delivery::Transient(_)));
        assert!(matches!(classify(429, b""), Delivery::Transient(_)));
        assert!(matches!(classify(400, b"{}"), Delivery::Permanent(_)));
        assert!(matches!(
            classify(409, br#"{"code":"opted_out"}"#),
            Delivery::OptedOut(_)
        ));
    }
}
