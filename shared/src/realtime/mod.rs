//! Realtime: every committed change reaches its tenant's WebSocket subscribers.
//!
//! - [`socket`]: the WebSocket API's functions (`$connect`, `$disconnect`, `$default`);
//! - [`connections`]: the `ws_connections` table they keep;
//! - [`frames`]: what travels over a socket, both ways;
//! - [`dispatcher`]: drains the event outbox to the connections through [`management`],
//!   the `@connections` API client;
//! - [`stats`]: `GET /api/ws/stats`.

pub mod connections;
pub mod dispatcher;
pub mod frames;
pub mod management;
pub mod socket;
pub mod stats;

/// The `@connections` endpoint the dispatcher posts to.
pub const WS_ENDPOINT_VAR: &str = "HERALD_WS_ENDPOINT";

/// The dispatcher function's name, which writers kick after committing events.
pub const DISPATCHER_FUNCTION_VAR: &str = "HERALD_DISPATCHER_FUNCTION";
