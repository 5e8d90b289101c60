//! The `scheduler` Lambda function, on an EventBridge schedule (every minute): starts every
//! scheduled campaign whose time has come. The event's content does not matter.

use herald::Config;
use herald::db::Database;
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    herald::telemetry::init();
    let config = Config::from_env()?;
    let db = Database::connect_lazy(
        &config.database_url,
        config.db_max_connections,
        config.slow_query,
        "herald-scheduler",
    )?;
    let db = &db;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        herald::engine::invocation::schedule(db, &event.context.request_id)
            .await
            .map_err(|p| lambda_runtime::Error::from(format!("scheduler failed: {:?}", p.detail)))
    }))
    .await
}
