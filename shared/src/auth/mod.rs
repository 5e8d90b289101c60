//! Who is calling, and what they may do in which tenant.
//!
//! Identity comes only from a verified token ([`jwt::Verifier`]). The tenant a request names
//! is a claim to be checked, never a fact: [`crate::db::TenantTx::begin`] looks the caller up
//! in `tenant_members` inside the transaction it opens.

pub mod jwks;
pub mod jwt;

pub use crate::domain::{Access, Role};
pub use jwt::{Claims, Clock, Verifier};

/// Why a token was refused. Every variant answers 401; the variants exist for logs.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("no bearer token")]
    Missing,
    #[error("the token is malformed")]
    Malformed,
    #[error("the token is longer than {} bytes", jwt::MAX_TOKEN_BYTES)]
    TooLarge,
    #[error("the token's type (typ) is not accepted: it must be JWT or at+jwt")]
    Type,
    #[error("the token's algorithm is not accepted")]
    Algorithm,
    #[error("the token's key is unknown")]
    UnknownKey,
    #[error("the token is expired")]
    Expired,
    #[error("the token is not valid yet: its nbf (not before) is in the future")]
    NotYetValid,
    #[error("the token was issued in the future: its iat (issued at) is ahead of the clock")]
    IssuedInFuture,
    #[error("the token is invalid: {0}")]
    Invalid(String),
    #[error("the signing keys could not be fetched: {0}")]
    KeysUnavailable(String),
}

/// The bearer token of an `Authorization` header.
pub fn bearer_token(headers: &http::HeaderMap) -> Result<&str, AuthError> {
    let value = headers
        .get(http::header::AUTHORIZATION)
        .ok_or(AuthError::Missing)?
        .to_str()
        .map_err(|_| AuthError::Malformed)?;
    let (scheme, token) = value.split_once(' ').ok_or(AuthError::Malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(AuthError::Malformed);
    }
    Ok(token.trim())
}
