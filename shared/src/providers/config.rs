//! A tenant's provider configuration as stored, and as the API shows it (credentials
//! masked).

use serde::Serialize;
use uuid::Uuid;

use super::credential::Credential;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    Http,
    Twilio,
    Log,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Http => "http",
            ProviderKind::Twilio => "twilio",
            ProviderKind::Log => "log",
        }
    }

    pub fn parse(raw: &str) -> Option<ProviderKind> {
        [ProviderKind::Http, ProviderKind::Twilio, ProviderKind::Log]
            .into_iter()
            .find(|k| k.as_str() == raw)
    }
}

impl TryFrom<String> for ProviderKind {
    type Error = String;
    fn try_from(raw: String) -> Result<ProviderKind, String> {
        ProviderKind::parse(&raw).ok_or_else(|| format!("unknown provider kind {raw:?}"))
    }
}

/// The default failures in a row after which a running campaign pauses.
pub const DEFAULT_MAX_FAILURES: i32 = 10;

/// A tenant's provider, as the sender uses it.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ProviderConfig {
    pub tenant_id: Uuid,
    #[sqlx(try_from = "String")]
    pub kind: ProviderKind,
    pub url: Option<String>,
    pub account_sid: Option<String>,
    pub sender: Option<String>,
    #[sqlx(try_from = "Option<String>")]
    pub secret: MaybeCredential,
    pub messages_per_second: Option<i32>,
    pub max_consecutive_failures: i32,
}

/// An optional credential (sqlx decodes `Option<String>` into it).
#[derive(Clone, Debug, Default)]
pub struct MaybeCredential(pub Option<Credential>);

impl From<Option<String>> for MaybeCredential {
    fn from(raw: Option<String>) -> MaybeCredential {
        MaybeCredential(raw.map(Credential::from))
    }
}

impl ProviderConfig {
    /// The `log` provider with default limits: `herald-local`'s default.
    pub fn default_log(tenant_id: Uuid) -> ProviderConfig {
        ProviderConfig {
            tenant_id,
            kind: ProviderKind::Log,
            url: None,
            account_sid: None,
            sender: None,
            secret: MaybeCredential::default(),
            messages_per_second: None,
            max_consecutive_failures: DEFAULT_MAX_FAILURES,
        }
    }

    pub fn secret(&self) -> Option<&Credential> {
        self.secret.0.as_ref()
    }

    /// The API's view. `reveal` shows the http signing secret in full: only in the answer
    /// to the `PUT` that generated it.
    pub fn view(&self, configured: bool, reveal: bool) -> ProviderView {
        let secret = self.secret();
        ProviderView {
            kind: self.kind,
            configured,
            url: self.url.clone(),
            account_sid: self.account_sid.clone(),
            from: self.sender.clone(),
            signing_secret: match self.kind {
                ProviderKind::Http => secret.map(|s| match reveal {
                    true => s.expose().to_owned(),
                    false => crate::webhooks::secret::Secret::from(s.expose().to_owned()).masked(),
                }),
                _ => None,
            },
            auth_token: match self.kind {
                ProviderKind::Twilio => secret.map(Credential::masked),
                _ => None,
            },
            messages_per_second: self.messages_per_second,
            max_consecutive_failures: self.max_consecutive_failures,
        }
    }
}

/// `GET/PUT /api/provider`: the tenant's delivery provider, credentials masked.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProviderView {
    pub kind: ProviderKind,
    /// False when the tenant configured none and a deployment default (`log` under
    /// herald-local) applies.
    pub configured: bool,
    /// `http`: the endpoint messages are POSTed to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// `twilio`: the account SID.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_sid: Option<String>,
    /// `twilio`: the sending number or messaging service SID.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// `http`: the Standard Webhooks signing secret; in full only in the `PUT` answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signing_secret: Option<String>,
    /// `twilio`: the auth token, always masked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_token: Option<String>,
    /// Per-tenant rate limit; absent means none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub messages_per_second: Option<i32>,
    /// A running campaign pauses after this many failures in a row.
    pub max_consecutive_failures: i32,
}
