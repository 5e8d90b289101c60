//! The event history, `GET /api/events` (served by the tenants function): the audit log of
//! every change, with who made it, kept for the retention period (`HERALD_EVENT_RETENTION_DAYS`).

use http::StatusCode;

use crate::App;
use crate::auth::Access;
use crate::domain::{Cursor, Limit, parse_time, parse_uuid};
use crate::events::{self, Event, EventType, HistoryQuery};
use crate::http::problem::ProblemDocument;
use crate::http::{Body, Problem, Request, Response, paging, request, response};

crate::domain::page! {
    /// A page of the tenant's events.
    EventPage of Event,
    total: " Never given: the history is paged by cursor only."
}

/// The tenant's events, newest first; or, with `after`, oldest first from the event after
/// that one (to catch up from the last event a client saw).
#[utoipa::path(get, path = "/api/events", tag = "events",
    params(
        ("limit" = Option<u32>, Query, description = "1 to 200, default 50"),
        ("cursor" = Option<String>, Query, description = "`nextCursor` of the previous page: the next page in the same order"),
        ("after" = Option<uuid::Uuid>, Query, description = "An event id: the events after it, oldest first"),
        ("type" = Option<String>, Query, description = "Only these types, comma-separated"),
        ("from" = Option<String>, Query, description = "Only events at or after this time (RFC 3339)"),
        ("until" = Option<String>, Query, description = "Only events before this time (RFC 3339)"),
    ),
    responses(
        (status = 200, body = EventPage),
        (status = 404, description = "`after` or `cursor` names no event of this tenant (or one already purged)", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub async fn list(app: &App, req: &Request) -> Result<Response<Body>, Problem> {
    let (query, limit) = history_query(req)?;
    let mut tx = app.begin(req, Access::Read).await?;
    let mut items = events::history(&mut tx, &query)
        .await?
        .ok_or_else(|| Problem::not_found("event"))?;
    tx.commit().await?;
    // The cursor names its order too: the next page goes on the same way.
    let order = if query.ascending { "a" } else { "d" };
    let next_cursor =
        paging::next_cursor(&mut items, limit, |e| e.id).map(|c| order.to_owned() + &c);
    let page = EventPage {
        items,
        total: None,
        next_cursor,
    };
    response::json(StatusCode::OK, &page)
}

/// The query, and the page size it fetches one more than.
fn history_query(req: &Request) -> Result<(HistoryQuery, Limit), Problem> {
    let param = |name| request::query(req, name);
    let field =
        |pointer: &'static str| move |e: crate::domain::Invalid| Problem::field(pointer, e.0);
    let limit = Limit::parse(param("limit")).map_err(field("/limit"))?;
    let after = param("after")
        .map(parse_uuid)
        .transpose()
        .map_err(field("/after"))?;
    let cursor = param("cursor").map(parse_cursor).transpose()?;
    let (ascending, cursor) = match (after, cursor) {
        (Some(_), Some(_)) => {
            return Err(Problem::field(
                "/cursor",
                "use either after or cursor, not both",
            ));
        }
        (Some(id), None) => (true, Some(id)),
        (None, Some((ascending, id))) => (ascending, Some(id)),
        (None, None) => (false, None),
    };
    let query = HistoryQuery {
        ascending,
        cursor,
        types: event_types(param("type"))?,
        from: param("from")
            .map(parse_time)
            .transpose()
            .map_err(field("/from"))?,
        until: param("until")
            .map(parse_time)
            .transpose()
            .map_err(field("/until"))?,
        limit: i64::from(limit.get()),
    };
    Ok((query, limit))
}

/// A cursor this endpoint issued: its order (`a` or `d`) and the last event of the page.
fn parse_cursor(raw: &str) -> Result<(bool, uuid::Uuid), Problem> {
    let bad = || Problem::field("/cursor", "is not a cursor this API issued");
    let ascending = match raw.get(..1) {
        Some("a") => true,
        Some("d") => false,
        _ => return Err(bad()),
    };
    let id = Cursor::parse(&raw[1..]).map_err(|_| bad())?.id();
    Ok((ascending, id))
}

fn event_types(raw: Option<&str>) -> Result<Vec<EventType>, Problem> {
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    raw.split(',')
        .map(|name| {
            EventType::parse(name.trim())
                .ok_or_else(|| Problem::field("/type", format!("`{name}` is not an event type")))
        })
        .collect()
}
