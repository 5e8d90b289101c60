//! Paging parameters of list endpoints.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::Invalid;

/// Declares a list's answer: its `items`, their `total` when paging by `offset` (what it
/// counts, in a line), and the cursor of the next page. A macro rather than a generic
/// `Page<T>`: utoipa names a generic's instances `Page_Contact`, which would rename the
/// schemas clients generate code from.
macro_rules! page {
    ($(#[$attr:meta])* $name:ident of $item:ty, total: $total:literal) => {
        #[derive(Debug, serde::Serialize, utoipa::ToSchema)]
        #[serde(rename_all = "camelCase")]
        $(#[$attr])*
        pub struct $name {
            pub items: Vec<$item>,
            #[doc = $total]
            #[serde(skip_serializing_if = "Option::is_none")]
            pub total: Option<i64>,
            /// Pass as `cursor` for the next page; absent on the last page.
            #[serde(skip_serializing_if = "Option::is_none")]
            pub next_cursor: Option<String>,
        }
    };
}
pub(crate) use page;

/// Page size: 1 to 200, default 50.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit(u32);

impl Limit {
    pub const DEFAULT: Limit = Limit(50);
    pub const MAX: u32 = 200;

    pub fn parse(input: Option<&str>) -> Result<Limit, Invalid> {
        let Some(raw) = input else {
            return Ok(Limit::DEFAULT);
        };
        match raw.parse::<u32>() {
            Ok(n @ 1..=Self::MAX) => Ok(Limit(n)),
            _ => Err(Invalid::new(format!(
                "must be an integer from 1 to {}",
                Self::MAX
            ))),
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }

    /// Rows a list query fetches: one more than the page, to learn whether another follows.
    ///
    /// Stores write this into the SQL as a literal rather than a bind parameter. It is a
    /// validated integer, so nothing can be injected, and a bound LIMIT made PostgreSQL
    /// judge the generic plan too costly and re-plan (re-expanding the RLS policy) on every
    /// execution; a literal lets the prepared statement keep one plan per page size.
    pub fn fetch(self) -> u32 {
        self.0 + 1
    }
}

/// Rows to skip: 0 to 100,000 (deeper pages should use a cursor).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offset(u32);

impl Offset {
    pub const MAX: u32 = 100_000;

    pub fn parse(raw: &str) -> Result<Offset, Invalid> {
        match raw.parse::<u32>() {
            Ok(n @ 0..=Self::MAX) => Ok(Offset(n)),
            _ => Err(Invalid::new(format!(
                "must be an integer from 0 to {}",
                Self::MAX
            ))),
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

/// A list request's page: its size and either rows to skip or where the last page ended
/// (never both; see `Paging::from_request` in `http::paging`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    pub limit: Limit,
    pub offset: Option<Offset>,
    pub cursor: Option<Cursor>,
}

/// An opaque keyset cursor: the id of the last row of the previous page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor(uuid::Uuid);

impl Cursor {
    pub fn after(id: uuid::Uuid) -> Cursor {
        Cursor(id)
    }

    pub fn parse(raw: &str) -> Result<Cursor, Invalid> {
        URL_SAFE_NO_PAD
            .decode(raw)
            .ok()
            .and_then(|bytes| uuid::Uuid::from_slice(&bytes).ok())
            .map(Cursor)
            .ok_or_else(|| Invalid::new("is not a cursor this API issued"))
    }

    pub fn encode(self) -> String {
        URL_SAFE_NO_PAD.encode(self.0.as_bytes())
    }

    pub fn id(self) -> uuid::Uuid {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_bounds() {
        assert_eq!(Limit::parse(None).unwrap().get(), 50);
        assert_eq!(Limit::parse(Some("200")).unwrap().get(), 200);
        for bad in ["0", "201", "-1", "abc", ""] {
            assert!(Limit::parse(Some(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn cursor_round_trips() {
        let id = uuid::Uuid::now_v7();
        assert_eq!(Cursor::parse(&Cursor::after(id).encode()).unwrap().id(), id);
        assert!(Cursor::parse("not-a-cursor").is_err());
    }
}
