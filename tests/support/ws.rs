//! A real WebSocket client for `herald-local`'s `/ws` (tokio-tungstenite, no TLS).

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use uuid::Uuid;

use crate::TestApp;

/// How long a test waits for a frame it expects.
pub const FRAME_DEADLINE: Duration = Duration::from_secs(5);

pub struct WsClient {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl TestApp {
    /// `ws://…/ws?token=…&tenantId=…&language=…`
    pub fn ws_url(&self, token: &str, tenant: Option<Uuid>, language: &str) -> String {
        let mut url = format!(
            "{}/ws?token={token}&language={language}",
            self.base.replacen("http://", "ws://", 1)
        );
        if let Some(tenant) = tenant {
            url.push_str(&format!("&tenantId={tenant}"));
        }
        url
    }

    /// Connects as `sub` to `tenant`; panics when refused.
    pub async fn ws(&self, sub: &str, tenant: Uuid) -> WsClient {
        self.ws_lang(sub, tenant, "en").await
    }

    pub async fn ws_lang(&self, sub: &str, tenant: Uuid, language: &str) -> WsClient {
        let url = self.ws_url(&crate::token(sub, None, 3600), Some(tenant), language);
        WsClient::connect(&url).await.expect("websocket accepted")
    }
}

impl WsClient {
    /// Connects; a refused handshake gives its HTTP status.
    pub async fn connect(url: &str) -> Result<WsClient, u16> {
        match tokio_tungstenite::connect_async(url).await {
            Ok((stream, _)) => Ok(WsClient { stream }),
            Err(tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
            Err(e) => panic!("websocket handshake failed: {e}"),
        }
    }

    pub async fn send(&mut self, message: &Value) {
        self.stream
            .send(Message::Text(message.to_string().into()))
            .await
            .expect("frame sent");
    }

    pub async fn send_raw(&mut self, message: Message) -> Result<(), tungstenite::Error> {
        self.stream.send(message).await
    }

    /// The next text frame as JSON; `None` if the socket closed or `deadline` passed.
    pub async fn next_within(&mut self, deadline: Duration) -> Option<Value> {
        let read = async {
            while let Some(frame) = self.stream.next().await {
                match frame {
                    Ok(Message::Text(text)) => {
                        return Some(serde_json::from_str(text.as_str()).expect("JSON frame"));
                    }
                    Ok(Message::Close(_)) | Err(_) => return None,
                    Ok(_) => {}
                }
            }
            None
        };
        tokio::time::timeout(deadline, read).await.ok().flatten()
    }

    /// The next text frame; panics when none comes.
    pub async fn next(&mut self) -> Value {
        self.next_within(FRAME_DEADLINE)
            .await
            .expect("a frame within the deadline")
    }

    /// Sends `ping` and returns the frames that arrived before the pong.
    pub async fn drain_until_pong(&mut self) -> Vec<Value> {
        self.send(&serde_json::json!({ "action": "ping" })).await;
        let mut before = Vec::new();
        loop {
            let frame = self.next().await;
            if frame["type"] == "pong" {
                return before;
            }
            before.push(frame);
        }
    }

    /// Whether the server closed the socket within `deadline`.
    pub async fn closed_within(&mut self, deadline: Duration) -> bool {
        let read = async {
            while let Some(frame) = self.stream.next().await {
                match frame {
                    Ok(Message::Close(_)) | Err(_) => return true,
                    Ok(_) => {}
                }
            }
            true
        };
        tokio::time::timeout(deadline, read).await.unwrap_or(false)
    }

    /// Drops the TCP connection without a close frame.
    pub fn vanish(self) {
        drop(self.stream);
    }
}
