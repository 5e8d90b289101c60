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

/// 201 with the new resource, and its address in `Location` (`{collection}/{id}`).
pub fn created<T: Serialize>(
    collection: &str,
    id: impl std::fmt::Display,
    value: &T,
) -> Result<Response<Body>, Problem> {
    let mut response = json(StatusCode::CREATED, value)?;
    let location = format!("{collection}/{id}");
    if let Ok(value) = http::HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    Ok(response)
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
