//! Domain types that parse their input once. A value of one of these types is valid by
//! construction, so code past the HTTP edge never re-checks it.

mod actor;
mod attributes;
mod email;
mod locale;
mod name;
mod page;
mod phone;
mod role;

pub use actor::Actor;
pub use attributes::Attributes;
pub use email::Email;
pub use locale::{Locale, LocaleInfo};
pub use name::Name;
pub(crate) use page::page;
pub use page::{Cursor, Limit, Offset, Paging};
pub use phone::Phone;
pub use role::{Access, Role};

/// Deserializer for fields where `null` (clear the value) differs from absent (leave it):
/// absent stays `None` through `#[serde(default)]`, `null` becomes `Some(None)`.
pub fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    serde::Deserialize::deserialize(d).map(Some)
}

/// A UUID given in a body or query string.
pub fn parse_uuid(raw: &str) -> Result<uuid::Uuid, Invalid> {
    uuid::Uuid::try_parse(raw.trim()).map_err(|_| Invalid::new("must be a UUID"))
}

/// An RFC 3339 timestamp, e.g. `2026-11-25T20:00:00Z`.
pub fn parse_time(raw: &str) -> Result<time::OffsetDateTime, Invalid> {
    time::OffsetDateTime::parse(raw.trim(), &time::format_description::well_known::Rfc3339)
        .map_err(|_| Invalid::new("must be an RFC 3339 timestamp, such as 2026-11-25T20:00:00Z"))
}

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

    /// One line for a list of them: the only one, or how many there are.
    pub fn summary(errors: &[FieldError]) -> String {
        match errors {
            [one] if one.pointer.is_empty() => one.detail.clone(),
            [one] => format!("{} {}", one.pointer, one.detail),
            _ => format!("{} fields are invalid", errors.len()),
        }
    }
}

/// Collects every field's error of a request instead of stopping at the first, so one
/// answer names everything wrong with a body.
#[derive(Debug, Default)]
pub struct FieldErrors(Vec<FieldError>);

impl FieldErrors {
    /// The parsed value, or `None` with its error recorded under `pointer`.
    pub fn check<T>(&mut self, pointer: &str, result: Result<T, Invalid>) -> Option<T> {
        result
            .map_err(|e| self.0.push(FieldError::new(pointer, e.0)))
            .ok()
    }

    /// As [`FieldErrors::check`], for a parser that reports several errors of its own.
    pub fn check_all<T>(&mut self, result: Result<T, Vec<FieldError>>) -> Option<T> {
        result.map_err(|e| self.0.extend(e)).ok()
    }

    pub fn push(&mut self, pointer: &str, detail: impl Into<String>) {
        self.0.push(FieldError::new(pointer, detail));
    }

    pub fn into_result(self) -> Result<(), Vec<FieldError>> {
        self.finish(|| ())
    }

    /// `value()` when nothing was recorded; every error otherwise.
    pub fn finish<T>(self, value: impl FnOnce() -> T) -> Result<T, Vec<FieldError>> {
        if self.0.is_empty() {
            Ok(value())
        } else {
            Err(self.0)
        }
    }
}
