//! The `migrate` Lambda function: applies Herald's migrations to the deployed database as
//! its owner and keeps `herald_app`'s password in step with the functions' secret. Invoked
//! by hand after a deploy (`sam remote invoke MigrateFunction`); see the README's Deploy
//! section. Its input is ignored; its output is the [`herald::migrate::Report`].

use lambda_http::lambda_runtime::{self, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    herald::telemetry::init();
    let owner_url = std::env::var("OWNER_DATABASE_URL")
        .map_err(|_| "OWNER_DATABASE_URL is not set: the owner's connection URL")?;
    let app_url = std::env::var("DATABASE_URL").ok();
    lambda_runtime::run(service_fn(|_: LambdaEvent<Value>| {
        let (owner_url, app_url) = (owner_url.clone(), app_url.clone());
        async move {
            let report = herald::migrate::run(&owner_url, app_url.as_deref()).await?;
            tracing::info!(applied = ?report.applied, current = ?report.current, "migrated");
            Ok::<_, lambda_runtime::Error>(serde_json::to_value(report)?)
        }
    }))
    .await
}
