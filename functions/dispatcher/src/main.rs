//! The `dispatcher` Lambda function: drains the event outbox to WebSocket subscribers, then
//! makes the webhook deliveries that are due.
//! Invoked asynchronously after writes and by a one-minute schedule as a safety net.

use herald::Config;
use herald::realtime::dispatcher;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    herald::telemetry::init();
    let config = Config::load().await?;
    let dispatcher = config.dispatcher().await?;
    let egress = herald::net::egress::Egress::new(config.egress.clone(), Default::default());
    dispatcher::run_lambda(dispatcher, egress).await
}
