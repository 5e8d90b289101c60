//! Success responses.

use http::{StatusCode, header};
use serde::Serialize;

use super::{Body, Problem, Response};

pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Result<Response<Body>, Problem> {
    // Room for a page of 50 items (a page of contacts is about 13 KiB) from the start:
    // growing from serde_json's 128 bytes copied the body seven times over.
    let mut body = Vec::with_capacity(16 * 1024);
    serde_json::to_writer(&mut body, value).map_err(|e| {
        tracing::error!(error = %e, "response serialization failed");
        Problem::internal()
    })?;
    json_text(status, body)
}

/// `status` with JSON a handler wrote itself (see `contacts::json`).
pub fn json_text(status: StatusCode, json: Vec<u8>) -> Result<Response<Body>, Problem> {
    let body = String::from_utf8(json).map_err(|_| Problem::internal())?;
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
