//! The WebSocket API's functions: `ws-connect`, `ws-disconnect` and `ws-default`.
//!
//! Each receives API Gateway's WebSocket proxy event and answers a proxy response. At
//! `$connect` a non-2xx status refuses the connection before it is accepted; after that a
//! response body goes back to the client as a frame (the route response of template.yaml).

use std::sync::Arc;

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use aws_lambda_events::encodings::Body;
use http::HeaderValue;
use lambda_http::lambda_runtime::{self, LambdaEvent};
use serde_json::Value;
use tracing::Instrument;
use uuid::Uuid;

use super::connections::{self, NewConnection};
use super::frames::{self, Command};
use crate::auth::{self, AuthError, Verifier};
use crate::db::Database;
use crate::domain::Locale;
use crate::metrics;
use crate::observer::{Observer, ObserverConfig};

/// Which WebSocket route a function serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    Connect,
    Disconnect,
    Default,
}

impl Route {
    pub fn function(self) -> &'static str {
        match self {
            Route::Connect => "ws-connect",
            Route::Disconnect => "ws-disconnect",
            Route::Default => "ws-default",
        }
    }

    pub fn key(self) -> &'static str {
        match self {
            Route::Connect => "$connect",
            Route::Disconnect => "$disconnect",
            Route::Default => "$default",
        }
    }
}

/// One WebSocket function's state, built once per container.
pub struct Socket {
    route: Route,
    db: Database,
    verifier: Arc<Verifier>,
    /// Where `$connect` invocations' figures go, once the tenant is known.
    observer: Arc<Observer>,
}

/// A `$connect`'s verified caller and what it asks for.
struct Asked {
    claims: auth::Claims,
    tenant: Uuid,
    language: Locale,
    /// Replay every event after this one first.
    since: Option<Uuid>,
}

/// A function's answer: the status (at `$connect`, whether the connection is accepted) and
/// an optional frame for the client.
struct Reply {
    status: u16,
    body: Option<Value>,
}

impl metrics::Outcome for Reply {
    fn class(&self) -> metrics::Class {
        metrics::class_of(self.status)
    }
    fn status(&self) -> Option<u16> {
        Some(self.status)
    }
}

impl Reply {
    fn ok() -> Reply {
        Reply {
            status: 200,
            body: None,
        }
    }
    fn status(status: u16) -> Reply {
        Reply { status, body: None }
    }
    fn frame(body: Value) -> Reply {
        Reply {
            status: 200,
            body: Some(body),
        }
    }
}

impl Socket {
    pub fn new(route: Route, db: Database, verifier: Arc<Verifier>) -> Socket {
        let observer = Observer::new(db.app_pool().clone(), ObserverConfig::default());
        Socket {
            route,
            db,
            verifier,
            observer,
        }
    }

    pub fn with_observer(self, observer: Arc<Observer>) -> Socket {
        Socket { observer, ..self }
    }

    pub fn route(&self) -> Route {
        self.route
    }

    /// Handles one event. Never fails: errors become a status (500 after logging).
    pub async fn serve(&self, event: ApiGatewayWebsocketProxyRequest) -> ApiGatewayProxyResponse {
        let ctx = &event.request_context;
        let request_id = ctx.request_id.clone().unwrap_or_default();
        let connection_id = ctx.connection_id.clone().unwrap_or_default();
        let handled = async {
            let reply = match self.route {
                Route::Connect => self.connect(&event, &connection_id).await,
                Route::Disconnect => self.disconnect(&connection_id).await,
                Route::Default => self.default(&event, &connection_id).await,
            };
            reply.unwrap_or_else(|e| {
                tracing::error!(error = %e, "websocket function failed");
                Reply::status(500)
            })
        }
        .instrument(tracing::info_span!("websocket", connection_id = %connection_id));
        let reply = metrics::instrument(
            self.route.function(),
            self.route.key(),
            &request_id,
            handled,
        )
        .await;

        let mut response = ApiGatewayProxyResponse::default();
        response.status_code = i64::from(reply.status);
        if let Some(body) = reply.body {
            response.body = Some(Body::Text(body.to_string()));
            response.headers.insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
        response
    }

    /// `$connect`: the same rules as HTTP (verified token, membership), then the
    /// connection is stored. 401, 403, 400 or 404 (a `since` naming no event of the tenant)
    /// refuse it and store nothing.
    async fn connect(
        &self,
        event: &ApiGatewayWebsocketProxyRequest,
        connection_id: &str,
    ) -> Result<Reply, sqlx::Error> {
        let asked = match self.admit(event, connection_id).await {
            Ok(asked) => asked,
            Err(refusal) => return Ok(refusal),
        };
        let request_id = metrics::request_id();
        let Some(mut tx) = self
            .db
            .begin_tenant(asked.tenant, &asked.claims.sub, &request_id)
            .await?
        else {
            tracing::info!("connection refused: not a member");
            return Ok(Reply::status(403));
        };
        metrics::enter_tenant(asked.tenant, &self.observer);
        let replay_after = match asked.since {
            None => None,
            Some(since) => match crate::events::seq_of(&mut tx, since).await? {
                Some(seq) => Some(seq),
                None => {
                    tracing::info!("connection refused: since names no event of this tenant");
                    return Ok(Reply::status(404));
                }
            },
        };
        let new = NewConnection {
            connection_id,
            tenant: asked.tenant,
            sub: &asked.claims.sub,
            language: asked.language,
            replay_after,
        };
        connections::insert(tx.conn(), &new).await?;
        tx.commit().await?;
        Ok(Reply::ok())
    }

    /// What a `$connect` asks for, once its token is verified and its parameters read; or
    /// the refusal.
    async fn admit(
        &self,
        event: &ApiGatewayWebsocketProxyRequest,
        connection_id: &str,
    ) -> Result<Asked, Reply> {
        let query = &event.query_string_parameters;
        let header_token = auth::bearer_token(&event.headers).ok();
        let Some(token) = query.first("token").or(header_token) else {
            tracing::info!("connection refused: no token");
            return Err(Reply::status(401));
        };
        let claims = match self.verifier.verify(token).await {
            Ok(claims) => claims,
            Err(AuthError::KeysUnavailable(reason)) => {
                tracing::error!(%reason, "JWKS unavailable");
                return Err(Reply::status(503));
            }
            Err(e) => {
                tracing::info!(reason = %e, "connection refused: token");
                return Err(Reply::status(401));
            }
        };
        let named = query.first("tenantId").or(claims.tenant_id.as_deref());
        let Some(tenant) = named.and_then(|t| Uuid::try_parse(t.trim()).ok()) else {
            tracing::info!("connection refused: no tenant named");
            return Err(Reply::status(400));
        };
        let since = match query.first("since").map(|s| Uuid::try_parse(s.trim())) {
            Some(Err(_)) => {
                tracing::info!("connection refused: since is not an event id");
                return Err(Reply::status(400));
            }
            since => since.and_then(Result::ok),
        };
        if connection_id.is_empty() {
            return Err(Reply::status(400));
        }
        let language = Locale::negotiate(query.first("language").or_else(|| {
            event
                .headers
                .get("accept-language")
                .and_then(|v| v.to_str().ok())
        }));
        Ok(Asked {
            claims,
            tenant,
            language,
            since,
        })
    }

    /// `$disconnect`: forgets the connection, if it is still known.
    async fn disconnect(&self, connection_id: &str) -> Result<Reply, sqlx::Error> {
        if let Some(mut tx) = connections::begin_for(&self.db, connection_id).await? {
            connections::delete(tx.conn(), connection_id).await?;
            tx.commit().await?;
        }
        Ok(Reply::ok())
    }

    /// `$default`: `ping` and `subscribe`.
    async fn default(
        &self,
        event: &ApiGatewayWebsocketProxyRequest,
        connection_id: &str,
    ) -> Result<Reply, sqlx::Error> {
        let body = event.body.as_deref().unwrap_or("");
        match Command::parse(body) {
            Err(message) => Ok(Reply::frame(frames::error(&message))),
            Ok(Command::Ping) => Ok(Reply::frame(frames::pong())),
            Ok(Command::Subscribe(types)) => {
                let Some(mut tx) = connections::begin_for(&self.db, connection_id).await? else {
                    return Ok(Reply::frame(frames::error(
                        "this connection is not registered",
                    )));
                };
                connections::subscribe(tx.conn(), connection_id, &types).await?;
                tx.commit().await?;
                Ok(Reply::frame(frames::subscribed(&types)))
            }
        }
    }
}

/// Runs `socket` under the Lambda runtime: WebSocket proxy events in, proxy responses out.
/// A `$connect` that asks for a replay kicks the dispatcher (`HERALD_DISPATCHER_FUNCTION`)
/// once it is accepted.
pub async fn run(socket: Socket) -> Result<(), lambda_runtime::Error> {
    let socket = Arc::new(socket);
    let dispatcher = crate::kick::Kick::from_env(super::DISPATCHER_FUNCTION_VAR)
        .filter(|_| socket.route == Route::Connect)
        .map(Arc::new);
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| {
            let (socket, dispatcher) = (Arc::clone(&socket), dispatcher.clone());
            // Boxed: the handler's future is too deep for the runtime's types to lay out
            // within the default recursion limit.
            let serving: std::pin::Pin<Box<dyn Future<Output = ApiGatewayProxyResponse> + Send>> =
                Box::pin(async move {
                    let replay = event
                        .payload
                        .query_string_parameters
                        .first("since")
                        .is_some();
                    let response = socket.serve(event.payload).await;
                    if let Some(kick) = dispatcher.filter(|_| replay && response.status_code == 200)
                    {
                        kick.kick().await;
                    }
                    response
                });
            async move { Ok::<_, std::convert::Infallible>(serving.await) }
        },
    ))
    .await
}
