//! The `dispatcher` Lambda function: drains the event outbox to WebSocket subscribers, then
//! makes the webhook deliveries that are due.
//! Invoked asynchronously after writes and by a one-minute schedule as a safety net.

use herald::Config;
use herald::realtime::dispatcher::{self, Dispatcher};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    herald::telemetry::init();
    let config = Config::load().await?;
    let dispatcher = Dispatcher::from_config(&config).await?;
    let egress = herald::http::egress::Egress::new(config.egress.clone(), Default::default());
    dispatcher::run_lambda(dispatcher, egress).await
}
