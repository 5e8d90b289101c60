//! The open sockets of the local WebSocket gateway, and API Gateway's `@connections`
//! management API over them (`POST`, `GET`, `DELETE /@connections/{id}`), which the
//! dispatcher's `aws-sdk-apigatewaymanagement` client calls as it would in AWS.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::response::Response;
use http::{HeaderValue, StatusCode, header};
use serde_json::json;
use time::OffsetDateTime;
use tokio::sync::mpsc;

/// API Gateway's largest WebSocket message.
pub const MAX_MESSAGE: usize = 128 * 1024;

/// Frames queued for one socket before posts are throttled (429).
const QUEUE: usize = 1024;

/// What the gateway asks a socket's task to do.
#[derive(Debug)]
pub enum Outgoing {
    Text(String),
    /// `DELETE @connections/{id}`: close the socket (and run `$disconnect`).
    Close,
}

struct Open {
    queue: mpsc::Sender<Outgoing>,
    connected_at: OffsetDateTime,
    last_active: OffsetDateTime,
    source_ip: String,
    user_agent: String,
}

/// The sockets the gateway holds, by connection id.
#[derive(Default)]
pub struct Registry {
    open: Mutex<HashMap<String, Open>>,
}

impl Registry {
    /// Registers an accepted socket; its task reads the returned queue.
    pub fn open(
        &self,
        connection_id: &str,
        source_ip: String,
        user_agent: String,
    ) -> mpsc::Receiver<Outgoing> {
        let (queue, rx) = mpsc::channel(QUEUE);
        let now = OffsetDateTime::now_utc();
        self.lock().insert(
            connection_id.to_owned(),
            Open {
                queue,
                connected_at: now,
                last_active: now,
                source_ip,
                user_agent,
            },
        );
        rx
    }

    pub fn close(&self, connection_id: &str) {
        self.lock().remove(connection_id);
    }

    /// Notes client activity (`lastActiveAt`).
    pub fn touch(&self, connection_id: &str) {
        if let Some(open) = self.lock().get_mut(connection_id) {
            open.last_active = OffsetDateTime::now_utc();
        }
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Open>> {
        // A panic while holding the lock leaves the map itself intact.
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn send(&self, connection_id: &str, out: Outgoing) -> Result<(), StatusCode> {
        let queue = self
            .lock()
            .get(connection_id)
            .map(|o| o.queue.clone())
            .ok_or(StatusCode::GONE)?;
        queue.try_send(out).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => StatusCode::TOO_MANY_REQUESTS,
            mpsc::error::TrySendError::Closed(_) => StatusCode::GONE,
        })
    }
}

/// `POST /@connections/{id}`: one frame to the client.
pub async fn post(
    State(registry): State<Arc<Registry>>,
    Path(connection_id): Path<String>,
    body: Bytes,
) -> Response {
    if body.len() > MAX_MESSAGE {
        return error(StatusCode::PAYLOAD_TOO_LARGE);
    }
    let Ok(text) = String::from_utf8(body.to_vec()) else {
        // Binary frames are not part of Herald's protocol.
        return error(StatusCode::BAD_REQUEST);
    };
    match registry.send(&connection_id, Outgoing::Text(text)) {
        Ok(()) => Response::new(Body::empty()),
        Err(status) => error(status),
    }
}

/// `GET /@connections/{id}`: when it connected, from where, and when it last spoke.
pub async fn get(
    State(registry): State<Arc<Registry>>,
    Path(connection_id): Path<String>,
) -> Response {
    let rfc3339 = |t: OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    };
    let found = registry.lock().get(&connection_id).map(|o| {
        json!({
            "connectedAt": rfc3339(o.connected_at),
            "lastActiveAt": rfc3339(o.last_active),
            "identity": { "sourceIp": o.source_ip, "userAgent": o.user_agent },
        })
    });
    match found {
        Some(doc) => json_response(StatusCode::OK, &doc, None),
        None => error(StatusCode::GONE),
    }
}

/// `DELETE /@connections/{id}`: the gateway closes the socket.
pub async fn delete(
    State(registry): State<Arc<Registry>>,
    Path(connection_id): Path<String>,
) -> Response {
    match registry.send(&connection_id, Outgoing::Close) {
        Ok(()) => {
            let mut ok = Response::new(Body::empty());
            *ok.status_mut() = StatusCode::NO_CONTENT;
            ok
        }
        // A full queue still closes: the task drops the queue with the socket.
        Err(StatusCode::TOO_MANY_REQUESTS) => {
            registry.close(&connection_id);
            Response::new(Body::empty())
        }
        Err(status) => error(status),
    }
}

/// An error as API Gateway's REST-JSON protocol sends it: the SDK reads the error type from
/// `x-amzn-errortype` (so 410 becomes `GoneException`).
fn error(status: StatusCode) -> Response {
    let (kind, message) = match status {
        StatusCode::GONE => ("GoneException", "the connection is gone"),
        StatusCode::PAYLOAD_TOO_LARGE => (
            "PayloadTooLargeException",
            "the message is larger than 128 KB",
        ),
        StatusCode::TOO_MANY_REQUESTS => (
            "LimitExceededException",
            "the client is not reading its messages",
        ),
        _ => ("BadRequestException", "the message must be UTF-8 text"),
    };
    json_response(status, &json!({ "message": message }), Some(kind))
}

fn json_response(status: StatusCode, doc: &serde_json::Value, kind: Option<&str>) -> Response {
    let mut out = Response::new(Body::from(doc.to_string()));
    *out.status_mut() = status;
    out.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(kind) = kind.and_then(|k| HeaderValue::from_str(k).ok()) {
        out.headers_mut().insert("x-amzn-errortype", kind);
    }
    out
}
