//! A Lambda Runtime API emulator: the HTTP interface that AWS Lambda offers a function's
//! process (`AWS_LAMBDA_RUNTIME_API`), so that the real function binaries run here exactly as
//! under Lambda: they poll `/invocation/next`, answer on `/response` or `/error`, and report
//! init failures on `/init/error`. The Extensions API answers registration and then holds its
//! long poll open, as Lambda does until shutdown, for runtimes that register an internal
//! extension (graceful shutdown).
//!
//! It also notes when the process first asked for an event: process start to that moment is
//! the function's init time, the part of a cold start that the binary controls.
//!
//! Reference: <https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html>.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::Value;
use tokio::sync::{Notify, mpsc, oneshot};
use uuid::Uuid;

const NEXT: &str = "/2018-06-01/runtime/invocation/next";
const RESPONSE: &str = "/2018-06-01/runtime/invocation/{id}/response";
const ERROR: &str = "/2018-06-01/runtime/invocation/{id}/error";
const INIT_ERROR: &str = "/2018-06-01/runtime/init/error";
const EXTENSION_REGISTER: &str = "/2020-01-01/extension/register";
const EXTENSION_NEXT: &str = "/2020-01-01/extension/event/next";

/// How one invocation ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Response(Value),
    /// The runtime's error document (`errorType`, `errorMessage`).
    Error(Value),
}

impl Outcome {
    #[track_caller]
    pub fn response(self) -> Value {
        match self {
            Outcome::Response(v) => v,
            Outcome::Error(e) => panic!("the function failed: {e}"),
        }
    }
}

struct Shared {
    queue: mpsc::UnboundedSender<(String, Vec<u8>)>,
    next: tokio::sync::Mutex<mpsc::UnboundedReceiver<(String, Vec<u8>)>>,
    waiting: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    first_poll: Mutex<Option<Instant>>,
    polled: Notify,
    init_error: Mutex<Option<Value>>,
    function_name: String,
}

pub struct RuntimeApi {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl RuntimeApi {
    /// Listens on 127.0.0.1 at a free port.
    pub async fn start(function_name: &str) -> RuntimeApi {
        let (queue, next) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            queue,
            next: tokio::sync::Mutex::new(next),
            waiting: Mutex::new(HashMap::new()),
            first_poll: Mutex::new(None),
            polled: Notify::new(),
            init_error: Mutex::new(None),
            function_name: function_name.to_owned(),
        });
        let router = Router::new()
            .route(NEXT, get(next_invocation))
            .route(RESPONSE, post(response))
            .route(ERROR, post(error))
            .route(INIT_ERROR, post(init_error))
            .route(EXTENSION_REGISTER, post(register_extension))
            .route(EXTENSION_NEXT, get(extension_next))
            .with_state(Arc::clone(&shared));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        RuntimeApi { addr, shared, task }
    }

    /// The value of `AWS_LAMBDA_RUNTIME_API` for the function's process.
    pub fn endpoint(&self) -> String {
        self.addr.to_string()
    }

    /// Hands `event` to the function and waits up to `deadline` for its outcome.
    pub async fn invoke(&self, event: &Value, deadline: Duration) -> Result<Outcome, String> {
        let id = Uuid::new_v4().to_string();
        let (tx, rx) = oneshot::channel();
        self.shared.waiting.lock().unwrap().insert(id.clone(), tx);
        self.shared
            .queue
            .send((id, serde_json::to_vec(event).unwrap()))
            .map_err(|_| "the emulator stopped".to_owned())?;
        match tokio::time::timeout(deadline, rx).await {
            Ok(Ok(outcome)) => Ok(outcome),
            Ok(Err(_)) => Err("the emulator dropped the invocation".into()),
            Err(_) => Err(match self.init_error() {
                Some(e) => format!("no answer within {deadline:?}; init error: {e}"),
                None => format!("no answer within {deadline:?}"),
            }),
        }
    }

    /// When the process first asked for an event, waiting up to `deadline`.
    pub async fn first_poll(&self, deadline: Duration) -> Option<Instant> {
        let wait = async {
            loop {
                let notified = self.shared.polled.notified();
                if let Some(at) = *self.shared.first_poll.lock().unwrap() {
                    return at;
                }
                notified.await;
            }
        };
        tokio::time::timeout(deadline, wait).await.ok()
    }

    /// What the function reported on `/init/error`, if it failed to start.
    pub fn init_error(&self) -> Option<Value> {
        self.shared.init_error.lock().unwrap().clone()
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn next_invocation(State(shared): State<Arc<Shared>>) -> Response {
    {
        let mut first = shared.first_poll.lock().unwrap();
        if first.is_none() {
            *first = Some(Instant::now());
            shared.polled.notify_waiters();
        }
    }
    // Long poll, as Lambda's: the answer comes when there is an event.
    let Some((id, body)) = shared.next.lock().await.recv().await else {
        return StatusCode::GONE.into_response();
    };
    let deadline_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
        + 30_000;
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: String| {
        headers.insert(name, HeaderValue::from_str(&value).unwrap());
    };
    set("lambda-runtime-aws-request-id", id);
    set("lambda-runtime-deadline-ms", deadline_ms.to_string());
    set(
        "lambda-runtime-invoked-function-arn",
        format!(
            "arn:aws:lambda:us-east-1:123456789012:function:{}",
            shared.function_name
        ),
    );
    set(
        "lambda-runtime-trace-id",
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1".into(),
    );
    set("content-type", "application/json".into());
    (StatusCode::OK, headers, body).into_response()
}

async fn response(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: Bytes,
) -> StatusCode {
    finish(&shared, &id, Outcome::Response(parse(&body)))
}

async fn error(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: Bytes,
) -> StatusCode {
    finish(&shared, &id, Outcome::Error(parse(&body)))
}

fn finish(shared: &Shared, id: &str, outcome: Outcome) -> StatusCode {
    match shared.waiting.lock().unwrap().remove(id) {
        Some(tx) => {
            let _ = tx.send(outcome);
            StatusCode::ACCEPTED
        }
        None => StatusCode::BAD_REQUEST,
    }
}

async fn init_error(State(shared): State<Arc<Shared>>, body: Bytes) -> StatusCode {
    *shared.init_error.lock().unwrap() = Some(parse(&body));
    StatusCode::ACCEPTED
}

async fn register_extension(State(shared): State<Arc<Shared>>) -> Response {
    let body = serde_json::json!({
        "functionName": shared.function_name,
        "functionVersion": "$LATEST",
        "handler": "bootstrap",
    });
    (
        StatusCode::OK,
        [("lambda-extension-identifier", Uuid::new_v4().to_string())],
        axum::Json(body),
    )
        .into_response()
}

/// Lambda answers an extension's poll with SHUTDOWN when the environment ends; here the
/// environment ends when the test kills the process.
async fn extension_next() -> StatusCode {
    std::future::pending::<()>().await;
    StatusCode::OK
}

fn parse(body: &[u8]) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}
