//! The `twilio` provider: Twilio's Messages API (a form POST with basic auth: account SID
//! and auth token), asking for status callbacks at `POST /api/providers/twilio/status`; and
//! the `X-Twilio-Signature` check those callbacks pass.
//!
//! The callback URL carries the tenant and the message (`?tenantId=…&messageId=…`): the
//! tenant's auth token, read under that tenant's own context, verifies the signature, so a
//! forged tenant id only selects a token the forger does not have.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use reqwest::{Method, Url};
use serde_json::Value;
use sha1::Sha1;

use super::{Delivery, Outbound, Outgoing, Provider, ProviderConfig, SendFuture};
use crate::messages::MessageStatus;
use crate::messages::input::StatusReport;
use crate::net::egress::{Egress, read_capped};

/// Twilio's error code for a recipient who replied STOP.
pub const OPTED_OUT: i64 = 21610;

pub struct TwilioProvider {
    egress: Egress,
    messages_url: Option<Url>,
    callback: Option<Url>,
    account_sid: String,
    auth_token: String,
    from: String,
}

impl TwilioProvider {
    pub fn new(outbound: &Outbound, config: &ProviderConfig) -> TwilioProvider {
        let account_sid = config.account_sid.clone().unwrap_or_default();
        let messages_url = outbound
            .twilio_base_url
            .join(&format!("2010-04-01/Accounts/{account_sid}/Messages.json"))
            .ok();
        TwilioProvider {
            egress: outbound.egress.clone(),
            messages_url,
            callback: outbound
                .public_url
                .as_ref()
                .and_then(|u| u.join("api/providers/twilio/status").ok()),
            account_sid,
            auth_token: config
                .secret()
                .map(|s| s.expose().to_owned())
                .unwrap_or_default(),
            from: config.sender.clone().unwrap_or_default(),
        }
    }
}

/// How Twilio's answer reads.
pub fn classify(status: u16, body: &[u8]) -> Delivery {
    let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let code = json.get("code").and_then(Value::as_i64);
    match (status, code) {
        (200..=299, _) => Delivery::Sent {
            provider_id: json.get("sid").and_then(Value::as_str).map(str::to_owned),
        },
        (_, Some(OPTED_OUT)) => {
            Delivery::OptedOut(format!("twilio error {OPTED_OUT}: the recipient opted out"))
        }
        (429 | 500..=599, _) => Delivery::Transient(format!("twilio answered {status}")),
        (_, Some(code)) => Delivery::Permanent(format!("twilio error {code}")),
        _ => Delivery::Permanent(format!("twilio answered {status}")),
    }
}

impl Provider for TwilioProvider {
    fn send<'a>(&'a self, m: &'a Outgoing) -> SendFuture<'a> {
        Box::pin(async move {
            let Some(url) = &self.messages_url else {
                return Delivery::Permanent("the twilio provider is not configured".into());
            };
            let mut form = vec![
                ("To", m.recipient.clone()),
                (
                    if self.from.starts_with("MG") {
                        "MessagingServiceSid"
                    } else {
                        "From"
                    },
                    self.from.clone(),
                ),
                ("Body", m.body.clone()),
            ];
            if let Some(callback) = &self.callback {
                let mut callback = callback.clone();
                callback
                    .query_pairs_mut()
                    .append_pair("tenantId", &m.tenant_id.to_string())
                    .append_pair("messageId", &m.id.to_string());
                form.push(("StatusCallback", callback.to_string()));
            }
            let body = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(form.iter().map(|(k, v)| (*k, v.as_str())))
                .finish();
            let request = match self.egress.request(Method::POST, url.clone()) {
                Ok(r) => r,
                Err(refused) => return Delivery::Permanent(format!("refused: {refused}")),
            };
            let sent = request
                .basic_auth(&self.account_sid, Some(&self.auth_token))
                // Twilio's idempotency header: a retry of the same message is one message.
                .header("I-Twilio-Idempotency-Token", m.id.to_string())
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await;
            match sent {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let body = read_capped(response, 16 * 1024)
                        .await
                        .map(|(b, _)| b)
                        .unwrap_or_default();
                    classify(status, &body)
                }
                Err(e) => Delivery::Transient(format!("the request failed: {}", e.without_url())),
            }
        })
    }
}

/// Twilio's request signature: base64 of HMAC-SHA1 under the auth token over the full URL
/// followed by every POST parameter's name and value, sorted by name.
/// What a status callback's form says of the message: the status to record (none for
/// `queued`, `accepted`, `sending`, `scheduled`, `canceled`) and whether the recipient
/// opted out (error 21610: replied STOP).
pub fn status_report(params: &[(String, String)]) -> Option<(StatusReport, bool)> {
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let error_code = param("ErrorCode").filter(|c| !c.is_empty());
    let (status, error) = match param("MessageStatus").or(param("SmsStatus"))? {
        "sent" => (MessageStatus::Sent, None),
        "delivered" => (MessageStatus::Delivered, None),
        "read" => (MessageStatus::Read, None),
        s @ ("failed" | "undelivered") => (
            MessageStatus::Failed,
            Some(format!(
                "twilio: {s} (error {})",
                error_code.unwrap_or("unknown")
            )),
        ),
        _ => return None,
    };
    let report = StatusReport {
        status,
        error,
        provider_message_id: param("MessageSid").map(|s| s.chars().take(255).collect()),
    };
    Some((report, error_code == Some("21610")))
}

pub fn signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    STANDARD.encode(mac(auth_token, url, params).finalize().into_bytes())
}

/// Whether `header` is the signature of this request (constant-time comparison).
pub fn verify(auth_token: &str, url: &str, params: &[(String, String)], header: &str) -> bool {
    let Ok(given) = STANDARD.decode(header.trim()) else {
        return false;
    };
    mac(auth_token, url, params).verify_slice(&given).is_ok()
}

fn mac(auth_token: &str, url: &str, params: &[(String, String)]) -> Hmac<Sha1> {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut mac = Hmac::<Sha1>::new_from_slice(auth_token.as_bytes()).expect("any key length");
    mac.update(url.as_bytes());
    for (k, v) in sorted {
        mac.update(k.as_bytes());
        mac.update(v.as_bytes());
    }
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn report(pairs: &[(&str, &str)]) -> Option<(StatusReport, bool)> {
        status_report(&form(pairs))
    }

    #[test]
    fn status_callbacks_map_onto_message_statuses() {
        let (sent, opted_out) =
            report(&[("MessageSid", "SM1"), ("MessageStatus", "sent")]).unwrap();
        assert_eq!(
            (sent.status, sent.error, opted_out),
            (MessageStatus::Sent, None, false)
        );
        assert_eq!(sent.provider_message_id.as_deref(), Some("SM1"));
        let delivered = report(&[("SmsStatus", "delivered")]).unwrap().0;
        assert_eq!(
            delivered.status,
            MessageStatus::Delivered,
            "the older field name"
        );
        let (failed, opted_out) =
            report(&[("MessageStatus", "undelivered"), ("ErrorCode", "21610")]).unwrap();
        assert_eq!(failed.status, MessageStatus::Failed);
        assert_eq!(
            failed.error.as_deref(),
            Some("twilio: undelivered (error 21610)")
        );
        assert!(opted_out, "21610: the recipient replied STOP");
        let unknown = report(&[("MessageStatus", "failed"), ("ErrorCode", "")])
            .unwrap()
            .0;
        assert_eq!(
            unknown.error.as_deref(),
            Some("twilio: failed (error unknown)")
        );
        for nothing in ["queued", "accepted", "sending", "scheduled", "canceled"] {
            assert!(report(&[("MessageStatus", nothing)]).is_none(), "{nothing}");
        }
        assert!(report(&[]).is_none());
    }

    /// The example of Twilio's security documentation.
    #[test]
    fn matches_twilios_documented_example() {
        let params: Vec<(String, String)> = [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        let token = "12345";
        let sig = signature(token, url, &params);
        assert_eq!(sig, "0/KCTR6DLpKmkAf8muzZqo1nDgQ=");
        assert!(verify(token, url, &params, &sig));
        assert!(!verify("54321", url, &params, &sig));
        assert!(!verify(token, url, &params[1..], &sig));
    }

    #[test]
    fn answers_read_as_outcomes() {
        assert!(matches!(
            classify(201, br#"{"sid":"SM1"}"#),
            Delivery::Sent {
                provider_id: Some(_)
            }
        ));
        assert!(matches!(
            classify(400, br#"{"code":21610}"#),
            Delivery::OptedOut(_)
        ));
        assert!(matches!(
            classify(400, br#"{"code":21211}"#),
            Delivery::Permanent(_)
        ));
        assert!(matches!(classify(503, b""), Delivery::Transient(_)));
    }
}
