//! Paging of list endpoints: `limit` (1–200, default 50) with either `offset` or `cursor`,
//! parsed once from the query string. Stores fetch `limit + 1` rows; [`next_cursor`] trims
//! the extra row and turns the last kept one into the cursor of the next page.

use uuid::Uuid;

use super::{Problem, Request, request};
use crate::domain::{Cursor, Limit, Offset};

pub use crate::domain::Paging;

/// The paging parameters of a list, as the OpenAPI document shows them (the handler reads
/// them with [`Paging::from_request`]).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // documentation only
pub struct PageParams {
    /// Page size, default 50
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
    /// Rows to skip; the answer then includes `total`
    #[param(minimum = 0, maximum = 100000)]
    offset: Option<u32>,
    /// `nextCursor` of the previous page
    cursor: Option<String>,
}

/// [`PageParams`] for the lists that page by cursor only.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // documentation only
pub struct CursorParams {
    /// Page size, default 50
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
    /// `nextCursor` of the previous page
    cursor: Option<String>,
}

impl Paging {
    pub fn from_request(req: &Request) -> Result<Paging, Problem> {
        let limit = limit(req)?;
        let offset = request::query(req, "offset")
            .map(Offset::parse)
            .transpose()
            .map_err(|e| Problem::field("/offset", e.0))?;
        let cursor = cursor(req)?;
        if offset.is_some() && cursor.is_some() {
            return Err(Problem::field(
                "/cursor",
                "use either offset or cursor, not both",
            ));
        }
        Ok(Paging {
            limit,
            offset,
            cursor,
        })
    }
}

pub fn limit(req: &Request) -> Result<Limit, Problem> {
    Limit::parse(request::query(req, "limit")).map_err(|e| Problem::field("/limit", e.0))
}

pub fn cursor(req: &Request) -> Result<Option<Cursor>, Problem> {
    request::query(req, "cursor")
        .map(Cursor::parse)
        .transpose()
        .map_err(|e| Problem::field("/cursor", e.0))
}

/// Cuts a `limit + 1` page down to `limit`; the cursor after its last row when more follow.
pub fn next_cursor<T>(items: &mut Vec<T>, limit: Limit, id: impl Fn(&T) -> Uuid) -> Option<String> {
    let limit = limit.get() as usize;
    (items.len() > limit).then(|| {
        items.truncate(limit);
        Cursor::after(id(&items[limit - 1])).encode()
    })
}
