//! Whether a webhook URL may be delivered to, judged when it is saved: the same SSRF policy
//! that guards every delivery ([`crate::net::egress`]), applied early so that a tenant
//! hears "not a public address" as a 422 rather than through failing deliveries. The guard
//! at delivery still decides (a name may resolve elsewhere by then).

use std::time::Duration;

use reqwest::Url;

use super::input::WebhookUrl;
use crate::domain::FieldError;
use crate::net::egress::{Egress, Scheme};

/// How long saving a webhook waits on DNS; a name that does not answer in time is judged
/// at delivery instead.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

/// `Ok` when the policy lets deliveries reach `url` as far as can be told now: the scheme
/// and any IP literal, and every address a host name resolves to. An https name that does
/// not resolve is accepted (its records may not exist yet); one that resolves only to
/// refused addresses is not.
pub async fn check(egress: &Egress, url: &WebhookUrl) -> Result<(), FieldError> {
    let refuse = |detail: String| FieldError::new("/url", detail);
    let parsed = Url::parse(url.as_str()).map_err(|_| refuse("must be an absolute URL".into()))?;
    let scheme = egress
        .check(&parsed)
        .map_err(|refused| refuse(format!("cannot be delivered to: {refused}")))?;
    let Some(url::Host::Domain(host)) = parsed.host() else {
        return Ok(());
    };
    let lookup = tokio::net::lookup_host((host, 0));
    let addrs: Vec<_> = match tokio::time::timeout(LOOKUP_TIMEOUT, lookup).await {
        Ok(Ok(addrs)) => addrs.map(|a| a.ip()).collect(),
        _ => Vec::new(),
    };
    // Plain http is for allow-listed addresses only, so the name must be seen to reach one.
    if addrs.is_empty() && scheme == Scheme::Http {
        return Err(refuse(format!(
            "cannot be delivered to: {host} does not resolve, and plain http is allowed only \
             to addresses named in HERALD_EGRESS_ALLOW"
        )));
    }
    match addrs.first() {
        Some(first) if !addrs.iter().any(|ip| egress.policy().permits(scheme, *ip)) => {
            Err(refuse(format!(
                "cannot be delivered to: {host} resolves to {first}, {}",
                if scheme == Scheme::Http && crate::net::egress::is_public(*first) {
                    "and plain http is allowed only to addresses named in HERALD_EGRESS_ALLOW"
                        .to_owned()
                } else {
                    "which is not a public address".to_owned()
                }
            )))
        }
        _ => Ok(()),
    }
}
