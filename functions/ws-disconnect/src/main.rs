//! The `ws-disconnect` Lambda function, behind the WebSocket API's `$disconnect` route: forgets the connection.
//! Builds what lives across invocations once and hands events to the shared handler.

use herald::Config;
use herald::realtime::socket::{self, Route};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    herald::telemetry::init();
    let config = Config::load().await?;
    let socket = config.socket(Route::Disconnect)?;
    socket::run(socket).await
}
