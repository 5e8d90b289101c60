//! Delivery providers: where a tenant's messages go. One per tenant, chosen with `PUT
//! /api/provider`: `http` (a signed JSON POST to the tenant's endpoint), `twilio` (Twilio's
//! Messages API) or `log` (writes a log line; the default under `herald-local`).
//!
//! Every provider gets the message id as its idempotency key: a retry after a crash may
//! repeat a call, but never under a new key. Requests to tenant-chosen addresses go through
//! the SSRF guard ([`crate::net::egress::Egress`]).

pub mod config;
pub mod credential;
pub mod http;
pub mod input;
pub mod log;
pub mod store;
pub mod twilio;

use std::future::Future;
use std::pin::Pin;

pub use reqwest::Url;
use uuid::Uuid;

use crate::messages::Channel;
use crate::net::egress::{Egress, EgressPolicy, Timeouts};

pub use config::{ProviderConfig, ProviderKind};

/// One message on its way out.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// Herald's message id: the idempotency key.
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub campaign_id: Option<Uuid>,
    pub contact_id: Uuid,
    pub channel: Channel,
    pub recipient: String,
    pub subject: Option<String>,
    pub body: String,
}

/// What the provider made of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Accepted; the provider's id for it, when it gave one.
    Sent { provider_id: Option<String> },
    /// Worth retrying later: timeouts, connection errors, 429 and 5xx.
    Transient(String),
    /// Will never succeed as it is: the message fails.
    Permanent(String),
    /// The recipient has opted out (Twilio error 21610): the message fails and the contact
    /// is marked opted out.
    OptedOut(String),
}

pub type SendFuture<'a> = Pin<Box<dyn Future<Output = Delivery> + Send + 'a>>;

/// A delivery provider.
pub trait Provider: Send + Sync {
    fn send<'a>(&'a self, message: &'a Outgoing) -> SendFuture<'a>;
}

/// What providers need from the deployment, built once per process.
#[derive(Clone, Debug)]
pub struct Outbound {
    pub egress: Egress,
    /// Twilio's API root (`HERALD_TWILIO_BASE_URL`; tests point it at a fake).
    pub twilio_base_url: Url,
    /// Herald's public base URL, for Twilio's status callbacks (`HERALD_PUBLIC_URL`).
    pub public_url: Option<Url>,
}

pub const TWILIO_API: &str = "https://api.twilio.com";

impl Outbound {
    pub fn new(policy: EgressPolicy, twilio_base_url: Url, public_url: Option<Url>) -> Outbound {
        Outbound {
            egress: Egress::new(
                policy,
                Timeouts {
                    connect: std::time::Duration::from_secs(5),
                    total: std::time::Duration::from_secs(10),
                },
            ),
            twilio_base_url,
            public_url,
        }
    }

    /// The provider a tenant's configuration describes.
    pub fn provider(&self, config: &ProviderConfig) -> Box<dyn Provider> {
        match config.kind {
            ProviderKind::Log => Box::new(log::LogProvider),
            ProviderKind::Http => Box::new(http::HttpProvider::new(self.egress.clone(), config)),
            ProviderKind::Twilio => Box::new(twilio::TwilioProvider::new(self, config)),
        }
    }
}
