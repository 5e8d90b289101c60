//! `/ws`: the local gateway plays API Gateway's WebSocket API.
//!
//! A handshake becomes the `$connect` event `ws-connect` would receive; a refusal (any
//! non-2xx) is the handshake's answer, so nothing is upgraded and nothing stored. Each text
//! message becomes a `$default` event and the function's response body, if any, goes back
//! as a frame (the route response API Gateway is configured with). A close, from the
//! client or `DELETE @connections/{id}`, becomes `$disconnect`.
//!
//! Like API Gateway, the gateway does not promise `$disconnect`: a client that vanishes
//! without a close frame is forgotten here (its `@connections` answer 410) and its stored
//! connection is left for the dispatcher to prune on the next event.

use std::net::SocketAddr;
use std::sync::Arc;

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use herald::realtime::socket::{Route, Socket};
use http::{HeaderMap, StatusCode, Uri};
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::connections::{self, MAX_MESSAGE, Outgoing, Registry};

/// The WebSocket API: its three functions and the sockets it holds.
pub struct WsGateway {
    pub registry: Arc<Registry>,
    connect: Arc<Socket>,
    disconnect: Arc<Socket>,
    default: Arc<Socket>,
}

impl WsGateway {
    pub fn new(connect: Socket, disconnect: Socket, default: Socket) -> WsGateway {
        assert_eq!(connect.route(), Route::Connect);
        assert_eq!(disconnect.route(), Route::Disconnect);
        assert_eq!(default.route(), Route::Default);
        WsGateway {
            registry: Arc::new(Registry::default()),
            connect: Arc::new(connect),
            disconnect: Arc::new(disconnect),
            default: Arc::new(default),
        }
    }
}

/// `/ws` and `/@connections/{id}`.
pub fn router(gateway: Arc<WsGateway>) -> Router {
    let management = Router::new()
        .route(
            "/@connections/{id}",
            axum::routing::post(connections::post)
                .get(connections::get)
                .delete(connections::delete),
        )
        .with_state(Arc::clone(&gateway.registry));
    Router::new()
        .route("/ws", get(upgrade))
        .with_state(gateway)
        .merge(management)
}

/// What one connection's events share.
struct Peer {
    connection_id: String,
    connected_at: OffsetDateTime,
    source_ip: String,
    user_agent: String,
    host: String,
}

async fn upgrade(
    State(gateway): State<Arc<WsGateway>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    uri: Uri,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let peer = Peer {
        connection_id: connection_id(),
        connected_at: OffsetDateTime::now_utc(),
        source_ip: addr.ip().to_string(),
        user_agent: header("user-agent"),
        host: Some(header("host"))
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".into()),
    };

    let mut event = event(&peer, Route::Connect, None);
    let (single, multi) = header_maps(&headers);
    event["headers"] = single;
    event["multiValueHeaders"] = multi;
    let (single, multi) = query_maps(uri.query().unwrap_or(""));
    event["queryStringParameters"] = single;
    event["multiValueQueryStringParameters"] = multi;
    // Open before `$connect` runs: what the dispatcher posts the moment `$connect` commits
    // (a replay after `since`) is queued, not refused. (In AWS such a post is refused with 410
    // until the handshake ends; the dispatcher then retries a young connection's replay.)
    let queue = gateway.registry.open(
        &peer.connection_id,
        peer.source_ip.clone(),
        peer.user_agent.clone(),
    );
    let response = invoke(&gateway.connect, event).await;
    let status = status_of(&response);
    if !status.is_success() {
        gateway.registry.close(&peer.connection_id);
        return status.into_response();
    }
    ws.max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE)
        .on_upgrade(move |socket| serve(gateway, peer, socket, queue))
}

/// One socket's life: frames from the dispatcher out, messages to `$default`, and
/// `$disconnect` after a close.
async fn serve(
    gateway: Arc<WsGateway>,
    peer: Peer,
    mut socket: WebSocket,
    mut queue: tokio::sync::mpsc::Receiver<Outgoing>,
) {
    let closed_cleanly = loop {
        tokio::select! {
            out = queue.recv() => match out {
                Some(Outgoing::Text(text)) => {
                    if socket.send(Message::Text(text.into())).await.is_err() {
                        break false;
                    }
                }
                Some(Outgoing::Close) | None => {
                    let _ = socket.send(Message::Close(None)).await;
                    break true;
                }
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    gateway.registry.touch(&peer.connection_id);
                    let reply = message(&gateway, &peer, text.as_str().to_owned(), false).await;
                    if let Some(reply) = reply
                        && socket.send(Message::Text(reply.into())).await.is_err()
                    {
                        break false;
                    }
                }
                Some(Ok(Message::Binary(bytes))) => {
                    gateway.registry.touch(&peer.connection_id);
                    let reply = message(&gateway, &peer, STANDARD.encode(&bytes), true).await;
                    if let Some(reply) = reply
                        && socket.send(Message::Text(reply.into())).await.is_err()
                    {
                        break false;
                    }
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {
                    gateway.registry.touch(&peer.connection_id);
                }
                Some(Ok(Message::Close(_))) => break true,
                // Reset, EOF without a close frame, or a message over 128 KB (which API
                // Gateway answers by closing with 1009).
                Some(Err(_)) | None => break false,
            },
        }
    };
    gateway.registry.close(&peer.connection_id);
    if closed_cleanly {
        invoke(&gateway.disconnect, event(&peer, Route::Disconnect, None)).await;
    }
}

/// Runs one client message through `$default`; the response body, if any, is the reply.
async fn message(gateway: &WsGateway, peer: &Peer, body: String, base64: bool) -> Option<String> {
    let mut event = event(peer, Route::Default, Some(body));
    event["isBase64Encoded"] = json!(base64);
    let response = invoke(&gateway.default, event).await;
    match response.body {
        Some(aws_lambda_events::encodings::Body::Text(text)) => Some(text),
        _ => None,
    }
}

/// The WebSocket proxy event API Gateway sends for `route`.
fn event(peer: &Peer, route: Route, body: Option<String>) -> Value {
    let now = OffsetDateTime::now_utc();
    let ms = |t: OffsetDateTime| (t.unix_timestamp_nanos() / 1_000_000) as i64;
    let (event_type, direction) = match route {
        Route::Connect => ("CONNECT", "IN"),
        Route::Disconnect => ("DISCONNECT", "IN"),
        Route::Default => ("MESSAGE", "IN"),
    };
    let request_id = uuid::Uuid::new_v4().simple().to_string();
    let mut ctx = json!({
        "routeKey": route.key(),
        "eventType": event_type,
        "extendedRequestId": request_id,
        "requestTime": now.format(&time::macros::format_description!(
            "[day]/[month repr:short]/[year]:[hour]:[minute]:[second] +0000"
        )).unwrap_or_default(),
        "messageDirection": direction,
        "stage": "local",
        "connectedAt": ms(peer.connected_at),
        "requestTimeEpoch": ms(now),
        "identity": { "sourceIp": peer.source_ip, "userAgent": peer.user_agent },
        "requestId": request_id,
        "domainName": peer.host,
        "connectionId": peer.connection_id,
        "apiId": "local",
    });
    if route == Route::Default {
        ctx["messageId"] = json!(uuid::Uuid::new_v4().simple().to_string());
    }
    if route == Route::Disconnect {
        ctx["disconnectStatusCode"] = json!(1000);
        ctx["disconnectReason"] = json!("Client-side close frame status not set");
    }
    json!({
        "requestContext": ctx,
        "body": body,
        "isBase64Encoded": false,
    })
}

/// Deserialises the event as the Lambda runtime would and runs the function, to its end
/// even when the client goes away meanwhile (see `gateway::handle`).
async fn invoke(socket: &Arc<Socket>, event: Value) -> ApiGatewayProxyResponse {
    match serde_json::from_value::<ApiGatewayWebsocketProxyRequest>(event) {
        Ok(request) => {
            let socket = Arc::clone(socket);
            tokio::spawn(async move { socket.serve(request).await })
                .await
                .unwrap_or_else(|e| {
                    tracing::error!(error = %e, "websocket invocation panicked");
                    failed()
                })
        }
        Err(e) => {
            tracing::error!(error = %e, "websocket event does not deserialise");
            failed()
        }
    }
}

fn failed() -> ApiGatewayProxyResponse {
    let mut failed = ApiGatewayProxyResponse::default();
    failed.status_code = 500;
    failed
}

fn status_of(response: &ApiGatewayProxyResponse) -> StatusCode {
    u16::try_from(response.status_code)
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::BAD_GATEWAY)
}

/// A connection id shaped like API Gateway's (16 URL-safe characters).
fn connection_id() -> String {
    let bytes = uuid::Uuid::new_v4().into_bytes();
    URL_SAFE.encode(&bytes[..12])
}

fn header_maps(headers: &HeaderMap) -> (Value, Value) {
    pairs(headers.iter().map(|(k, v)| {
        (
            k.as_str().to_owned(),
            String::from_utf8_lossy(v.as_bytes()).into_owned(),
        )
    }))
}

fn query_maps(raw: &str) -> (Value, Value) {
    pairs(form_urlencoded::parse(raw.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())))
}

/// API Gateway's single-value (last wins) and multi-value maps of the same pairs; `null`
/// when there are none.
fn pairs(pairs: impl Iterator<Item = (String, String)>) -> (Value, Value) {
    let mut single = std::collections::BTreeMap::new();
    let mut multi: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (k, v) in pairs {
        single.insert(k.clone(), v.clone());
        multi.entry(k).or_default().push(v);
    }
    if single.is_empty() {
        return (Value::Null, Value::Null);
    }
    (json!(single), json!(multi))
}
