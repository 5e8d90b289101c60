//! The `scheduler` Lambda function, on an EventBridge schedule (every minute): starts every
//! scheduled campaign whose time has come. The event's content does not matter.

use herald::Config;
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    herald::telemetry::init();
    let config = Config::load().await?;
    let db = config.database("herald-scheduler")?;
    let sender = herald::kick::Kick::from_env(herald::engine::SENDER_FUNCTION_VAR);
    let (db, sender, retention) = (&db, &sender, config.event_retention);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let report = herald::engine::invocation::schedule(db, &event.context.request_id, retention)
            .await
            .map_err(|p| {
                lambda_runtime::Error::from(format!("scheduler failed: {}", p.report()))
            })?;
        // Started campaigns have recipients to materialise: wake the sender now rather than
        // at its next scheduled run.
        let started = report["started"].as_array().is_some_and(|s| !s.is_empty());
        if let Some(kick) = sender.as_ref().filter(|_| started) {
            kick.kick().await;
        }
        Ok::<_, lambda_runtime::Error>(report)
    }))
    .await
}
