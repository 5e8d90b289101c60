//! Domain types that parse their input once. A value of one of these types is valid by
//! construction, so code past the HTTP edge never re-checks it.

mod attributes;
mod email;
mod name;
mod page;
mod phone;

pub use attributes::Attributes;
pub use email::Email;
pub use name::Name;
pub use page::{Cursor, Limit, Offset};
pub use phone::Phone;

/// Why a value was refused, in words fit for an API error's `detail`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

impl Invalid {
    pub fn new(msg: impl Into<String>) -> Self {
        Invalid(msg.into())
    }
}

/// One invalid field of a request, located by a JSON Pointer (RFC 6901) into the body.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// JSON Pointer to the offending value, e.g. `/phone`; empty for the body as a whole.
    pub pointer: String,
    pub detail: String,
}

impl FieldError {
    pub fn new(pointer: impl Into<String>, detail: impl Into<String>) -> Self {
        FieldError {
            pointer: pointer.into(),
            detail: detail.into(),
        }
    }
}
