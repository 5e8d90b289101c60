//! The `ws-connect` Lambda function, behind the WebSocket API's `$connect` route: authenticates the token and stores the connection.
//! Builds what lives across invocations once and hands events to the shared handler.

use herald::Config;
use herald::realtime::socket::{self, Route};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    herald::telemetry::init();
    let config = Config::load().await?;
    let socket = config.socket(Route::Connect)?;
    socket::run(socket).await
}
