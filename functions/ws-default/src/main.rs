//! The `ws-default` Lambda function, behind the WebSocket API's `$default` route: answers pings and subscriptions.
//! Builds what lives across invocations once and hands events to the shared handler.

use herald::Config;
use herald::realtime::socket::{self, Route};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    herald::telemetry::init();
    let config = Config::load().await?;
    let socket = config.socket(Route::Default)?;
    socket::run(socket).await
}
