//! Success responses.

use http::{StatusCode, header};
use serde::Serialize;

use super::{Body, Problem, Response};

pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Result<Response<Body>, Problem> {
    let body = serde_json::to_string(value).map_err(|e| {
        tracing::error!(error = %e, "response serialization failed");
        Problem::internal()
    })?;
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::Text(body))
        .map_err(|_| Problem::internal())
}

pub fn ok<T: Serialize>(value: &T) -> Result<Response<Body>, Problem> {
    json(StatusCode::OK, value)
}

pub fn no_content() -> Result<Response<Body>, Problem> {
    Response::builder()
        .status(StatusCode::NO_CONTENT)
        .body(Body::Empty)
        .map_err(|_| Problem::internal())
}
