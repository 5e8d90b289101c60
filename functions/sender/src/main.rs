//! The `sender` Lambda function: invoked asynchronously after a campaign starts or a direct
//! message is queued, and on an EventBridge schedule as a safety net. Materialises started
//! campaigns and sends queued messages through each tenant's delivery provider, for at most
//! ten minutes per invocation. The event's content does not matter.

// The sender's future (claim, render, provider calls, record) nests deeply.
#![recursion_limit = "256"]
use herald::Config;
use herald::engine::Tuning;
use herald::engine::sender::Sender;
use herald::providers::Outbound;
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    herald::telemetry::init();
    let config = Config::load().await?;
    let db = config.database("herald-sender")?;
    let outbound = Outbound::new(
        config.egress.clone(),
        config.twilio_base_url.clone(),
        config.public_url.clone(),
    );
    // In AWS a tenant without a provider cannot start a campaign: no default provider.
    let sender = Sender::new(db, outbound, Tuning::default(), false);
    let sender = &sender;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        herald::engine::invocation::send(sender, &event.context.request_id)
            .await
            .map_err(|p| lambda_runtime::Error::from(format!("sender failed: {}", p.report())))
    }))
    .await
}
