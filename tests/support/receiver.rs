//! A customer's webhook endpoint: a real HTTP server on 127.0.0.1 that records every request
//! and answers from a script (then with a default answer), plus a Standard Webhooks
//! verifier written apart from Herald's own, from the specification.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// One request as received.
#[derive(Clone, Debug)]
pub struct Received {
    pub id: String,
    pub timestamp: String,
    pub signature: String,
    pub content_type: String,
    pub body: Vec<u8>,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

/// What the endpoint answers.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn status(status: u16) -> Answer {
        Answer {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Answer {
        self.headers.push((name, value.into()));
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Answer {
        self.body = body.into();
        self
    }
}

struct State {
    received: Vec<Received>,
    script: VecDeque<Answer>,
    default: Answer,
}

#[derive(Clone)]
pub struct Receiver {
    /// `http://127.0.0.1:{port}`.
    pub url: String,
    pub port: u16,
    state: Arc<Mutex<State>>,
}

impl Receiver {
    /// Answers `script` in order, then `200 OK` to everything.
    pub async fn start(script: Vec<Answer>) -> Receiver {
        let state = Arc::new(Mutex::new(State {
            received: Vec::new(),
            script: script.into(),
            default: Answer::status(200).body("ok"),
        }));
        let shared = Arc::clone(&state);
        let router = axum::Router::new().fallback(move |headers: HeaderMap, body: Bytes| {
            let shared = Arc::clone(&shared);
            async move {
                let header = |name: &str| {
                    headers
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned()
                };
                let answer = {
                    let mut state = shared.lock().unwrap();
                    state.received.push(Received {
                        id: header("webhook-id"),
                        timestamp: header("webhook-timestamp"),
                        signature: header("webhook-signature"),
                        content_type: header("content-type"),
                        body: body.to_vec(),
                    });
                    let fallback = state.default.clone();
                    state.script.pop_front().unwrap_or(fallback)
                };
                let mut response =
                    (StatusCode::from_u16(answer.status).unwrap(), answer.body).into_response();
                for (name, value) in answer.headers {
                    response.headers_mut().insert(name, value.parse().unwrap());
                }
                response
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, router).await });
        Receiver {
            url: format!("http://127.0.0.1:{port}"),
            port,
            state,
        }
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }

    pub fn count(&self) -> usize {
        self.state.lock().unwrap().received.len()
    }
}

/// Standard Webhooks verification as a receiver writes it from the specification: the key
/// is the base64 after `whsec_`, the signed content `{id}.{timestamp}.{body}`, and any of
/// the space-separated `v1,` signatures may match.
pub fn verifies(secret: &str, id: &str, timestamp: &str, body: &[u8], header: &str) -> bool {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").expect("a whsec_ secret"))
        .expect("base64 key");
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    let expected = STANDARD.encode(mac.finalize().into_bytes());
    header
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .any(|sig| sig == expected)
}
