//! The `trpc` Lambda function: the seed's tRPC procedures at `/api/trpc/…`. A batch may call
//! several resources, so it links every route; each call still runs through the same
//! handler, tenant transaction and rate limit as its REST route.

use herald::{App, Config};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    herald::telemetry::init();
    let config = Config::load().await?;
    let app = App::from_config(herald::api::trpc::endpoint(), &config)?;
    herald::app::run(app).await
}
