//! The `log` provider: a log line per message and nothing sent. The default under
//! `herald-local`, so a fresh development setup can run campaigns end to end.

use super::{Delivery, Outgoing, Provider, SendFuture};

pub struct LogProvider;

impl Provider for LogProvider {
    fn send<'a>(&'a self, message: &'a Outgoing) -> SendFuture<'a> {
        Box::pin(async move {
            tracing::info!(
                message_id = %message.id,
                campaign_id = ?message.campaign_id,
                channel = message.channel.as_str(),
                chars = message.body.chars().count(),
                "log provider: message delivered to the log"
            );
            Delivery::Sent {
                provider_id: Some(format!("log-{}", message.id)),
            }
        })
    }
}
