//! The `campaigns` Lambda function. Builds what lives across invocations once (configuration,
//! the lazily connecting pool, the token verifier) and hands requests to the shared handler.

use herald::{App, Config};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    herald::telemetry::init();
    let config = Config::load().await?;
    let app = App::from_config(herald::api::campaigns::ENDPOINT, &config)?;
    herald::app::run(app).await
}
