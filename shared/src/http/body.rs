//! Request bodies: size caps, media types and JSON decoding.
//!
//! A JSON body that is not JSON at all is a 400; JSON of the wrong shape (unknown fields,
//! wrong types, missing fields) is a 422 that says where.

use serde::de::DeserializeOwned;

use super::{Body, Problem, Request};

/// Cap for ordinary bodies.
pub const LIMIT: usize = 1024 * 1024;
/// Cap for bulk imports (API Gateway's own payload limit is 10 MB).
pub const IMPORT_LIMIT: usize = 10 * 1024 * 1024;

/// The body's bytes, refused beyond `limit`.
pub fn bytes(req: &Request, limit: usize) -> Result<&[u8], Problem> {
    let bytes: &[u8] = match req.body() {
        Body::Empty => &[],
        Body::Text(t) => t.as_bytes(),
        Body::Binary(b) => b,
        _ => &[],
    };
    if bytes.len() > limit {
        return Err(Problem::too_large(limit));
    }
    Ok(bytes)
}

/// The media type of the body, lowercased, without parameters.
pub fn media_type(req: &Request) -> Option<String> {
    let value = req
        .headers()
        .get(http::header::CONTENT_TYPE)?
        .to_str()
        .ok()?;
    Some(value.split(';').next()?.trim().to_ascii_lowercase())
}

pub fn is_json(media_type: &str) -> bool {
    media_type == "application/json" || media_type.ends_with("+json")
}

/// Decodes a JSON object body into `T`. A missing `Content-Type` is taken as JSON; another
/// type is refused.
pub fn json<T: DeserializeOwned>(req: &Request) -> Result<T, Problem> {
    if let Some(mt) = media_type(req)
        && !is_json(&mt)
    {
        return Err(Problem::unsupported_media_type("application/json"));
    }
    let bytes = bytes(req, LIMIT)?;
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        None => Err(Problem::malformed("a JSON body is required")),
        // serde would fill a struct from an array (`["Ada", "+1…"]`) by position; the API's
        // bodies are objects, with named fields only.
        Some(b'{') => decode(bytes),
        Some(_) => Err(Problem::field("", "the body must be a JSON object")),
    }
}

/// Decodes JSON bytes, telling syntax errors (400) from shape errors (422). Syntax is
/// checked over the whole body first (without building anything), so a truncated body is a
/// 400 even when a shape error would have been met before its end.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    serde_json::from_slice::<serde::de::IgnoredAny>(bytes)
        .map_err(|e| Problem::malformed(format!("the body is not valid JSON: {e}")))?;
    serde_json::from_slice(bytes).map_err(|e| Problem::field("", shape_error(&e)))
}

/// serde's message without its "at line 1 column 9" suffix, which means nothing to a
/// caller who sent one line.
fn shape_error(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg,
    }
}
