//! Kicking a worker function: the Lambda `Invoke` request an HTTP function sends after a
//! write, received by a stand-in for Lambda's endpoint on 127.0.0.1.

use std::sync::{Arc, Mutex};

use aws_credential_types::Credentials;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use herald::kick::Kick;

type Seen = Arc<Mutex<Vec<(String, http::HeaderMap, Vec<u8>)>>>;

async fn lambda(State(seen): State<Seen>, req: Request) -> StatusCode {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20).await.unwrap().to_vec();
    seen.lock()
        .unwrap()
        .push((parts.uri.path().to_owned(), parts.headers, body));
    StatusCode::ACCEPTED
}

#[tokio::test]
async fn a_kick_is_a_signed_asynchronous_invoke() {
    let seen = Seen::default();
    let app = axum::Router::new()
        .fallback(lambda)
        .with_state(Arc::clone(&seen));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let credentials = Credentials::new("AKIDKICK", "secret", Some("token".into()), None, "test");
    let kick = Kick::new(
        "herald-dispatcher".into(),
        "eu-west-1".into(),
        credentials,
        Some(format!("http://{addr}")),
    )
    .expect("a kick");
    kick.kick().await;

    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1, "one invocation");
    let (path, headers, body) = &seen[0];
    assert_eq!(path, "/2015-03-31/functions/herald-dispatcher/invocations");
    assert_eq!(headers["x-amz-invocation-type"], "Event", "asynchronous");
    assert_eq!(body.as_slice(), b"{}");
    let auth = headers["authorization"].to_str().unwrap();
    assert!(
        auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDKICK/")
            && auth.contains("/eu-west-1/lambda/aws4_request")
            && auth.contains("SignedHeaders=")
            && auth.contains("Signature="),
        "{auth}"
    );
    assert!(headers["x-amz-date"].to_str().unwrap().ends_with('Z'));
    assert_eq!(headers["x-amz-security-token"], "token");
}
