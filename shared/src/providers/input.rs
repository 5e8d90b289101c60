//! `PUT /api/provider` as sent, and as parsed.

use reqwest::Url;
use serde::Deserialize;

use super::config::{DEFAULT_MAX_FAILURES, ProviderKind};
use super::credential::Credential;
use crate::domain::{FieldError, FieldErrors, Invalid};

/// `PUT /api/provider`. `http` takes `url` (a signing secret is generated and shown once in
/// the answer); `twilio` takes `accountSid`, `authToken` and `from`; `log` takes nothing.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PutProvider {
    #[schema(value_type = ProviderKind)]
    pub kind: String,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub account_sid: Option<String>,
    #[serde(default)]
    pub auth_token: Option<String>,
    /// Twilio's `From`: an E.164 number or a messaging service SID (`MG…`).
    #[serde(default)]
    pub from: Option<String>,
    /// 1 to 100,000; absent means no rate limit.
    #[serde(default)]
    pub messages_per_second: Option<i32>,
    /// 1 to 100,000; default 10.
    #[serde(default)]
    pub max_consecutive_failures: Option<i32>,
}

/// A validated provider configuration, its secret generated (http) or given (twilio).
#[derive(Debug)]
pub struct NewProvider {
    pub kind: ProviderKind,
    pub url: Option<Url>,
    pub account_sid: Option<String>,
    pub from: Option<String>,
    pub secret: Option<Credential>,
    pub messages_per_second: Option<i32>,
    pub max_consecutive_failures: i32,
}

fn token(raw: &str, what: &str) -> Result<String, Invalid> {
    let t = raw.trim();
    if t.is_empty() || t.len() > 64 || !t.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(Invalid::new(format!(
            "{what} must be 1 to 64 letters and digits"
        )));
    }
    Ok(t.to_owned())
}

fn sender(raw: &str) -> Result<String, Invalid> {
    let t = raw.trim();
    let phone = t.strip_prefix('+').is_some_and(|d| {
        (7..=15).contains(&d.len()) && d.chars().all(|c| c.is_ascii_digit()) && !d.starts_with('0')
    });
    if phone || (t.starts_with("MG") && token(t, "").is_ok()) {
        Ok(t.to_owned())
    } else {
        Err(Invalid::new(
            "must be an E.164 number such as +15005550006 or a messaging service SID (MG…)",
        ))
    }
}

fn endpoint(raw: &str) -> Result<Url, Invalid> {
    let url = Url::parse(raw.trim()).map_err(|_| Invalid::new("must be an absolute URL"))?;
    match url.scheme() {
        "https" | "http" if url.host().is_some() && url.username().is_empty() => Ok(url),
        _ => Err(Invalid::new(
            "must be an http or https URL without credentials",
        )),
    }
}

fn bounded(raw: i32) -> Result<i32, Invalid> {
    match raw {
        1..=100_000 => Ok(raw),
        _ => Err(Invalid::new("must be between 1 and 100000")),
    }
}

/// What one kind of provider takes beyond the common settings.
#[derive(Default)]
struct Settings {
    url: Option<Url>,
    account_sid: Option<String>,
    from: Option<String>,
    secret: Option<Credential>,
}

fn refuse(errors: &mut FieldErrors, pointer: &str, present: bool) {
    if present {
        errors.push(pointer, "does not apply to this kind of provider");
    }
}

fn refuse_twilio(input: &PutProvider, errors: &mut FieldErrors) {
    refuse(errors, "/accountSid", input.account_sid.is_some());
    refuse(errors, "/authToken", input.auth_token.is_some());
    refuse(errors, "/from", input.from.is_some());
}

/// `http`: a URL, and a signing secret generated here.
fn http_settings(input: &PutProvider, errors: &mut FieldErrors) -> Settings {
    let mut settings = Settings::default();
    match input.url.as_deref() {
        Some(u) => settings.url = errors.check("/url", endpoint(u)),
        None => errors.push("/url", "is required for the http provider"),
    }
    refuse_twilio(input, errors);
    match crate::webhooks::secret::Secret::generate() {
        Ok(s) => settings.secret = Some(Credential::from(s.expose().to_owned())),
        Err(_) => errors.push("", "no random source for a signing secret"),
    }
    settings
}

/// `twilio`: the account SID, its auth token and the sending number, all required.
fn twilio_settings(input: &PutProvider, errors: &mut FieldErrors) -> Settings {
    let mut settings = Settings::default();
    refuse(errors, "/url", input.url.is_some());
    let required = "is required for the twilio provider";
    match input.account_sid.as_deref() {
        Some(s) => settings.account_sid = errors.check("/accountSid", token(s, "the SID")),
        None => errors.push("/accountSid", required),
    }
    match input.auth_token.as_deref() {
        Some(t) => {
            settings.secret = errors
                .check("/authToken", token(t, "the token"))
                .map(Credential::from)
        }
        None => errors.push("/authToken", required),
    }
    match input.from.as_deref() {
        Some(f) => settings.from = errors.check("/from", sender(f)),
        None => errors.push("/from", required),
    }
    settings
}

impl NewProvider {
    pub fn parse(input: PutProvider) -> Result<NewProvider, Vec<FieldError>> {
        let mut errors = FieldErrors::default();
        let kind = errors.check(
            "/kind",
            ProviderKind::parse(&input.kind)
                .ok_or_else(|| Invalid::new("must be one of http, twilio, log")),
        );
        let rate = input
            .messages_per_second
            .map(|r| errors.check("/messagesPerSecond", bounded(r)));
        let max = input
            .max_consecutive_failures
            .map(|m| errors.check("/maxConsecutiveFailures", bounded(m)));
        let settings = match kind {
            Some(ProviderKind::Http) => http_settings(&input, &mut errors),
            Some(ProviderKind::Twilio) => twilio_settings(&input, &mut errors),
            Some(ProviderKind::Log) => {
                refuse(&mut errors, "/url", input.url.is_some());
                refuse_twilio(&input, &mut errors);
                Settings::default()
            }
            None => Settings::default(),
        };
        let Settings {
            url,
            account_sid,
            from,
            secret,
        } = settings;
        errors.finish(|| NewProvider {
            kind: kind.expect("checked"),
            url,
            account_sid,
            from,
            secret,
            messages_per_second: rate.flatten(),
            max_consecutive_failures: max.flatten().unwrap_or(DEFAULT_MAX_FAILURES),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_takes_its_own_fields() {
        let http = NewProvider::parse(PutProvider {
            kind: "http".into(),
            url: Some("https://sms.example.com/send".into()),
            ..PutProvider::default()
        })
        .unwrap();
        assert!(http.secret.unwrap().expose().starts_with("whsec_"));
        let errors = NewProvider::parse(PutProvider {
            kind: "twilio".into(),
            url: Some("https://x.example".into()),
            from: Some("12345".into()),
            ..PutProvider::default()
        })
        .unwrap_err();
        let pointers: Vec<_> = errors.iter().map(|e| e.pointer.as_str()).collect();
        assert_eq!(pointers, ["/url", "/accountSid", "/authToken", "/from"]);
        assert!(
            NewProvider::parse(PutProvider {
                kind: "pigeon".into(),
                ..PutProvider::default()
            })
            .is_err()
        );
    }
}
