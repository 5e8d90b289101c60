//! The contacts function: `/api/contacts`.

use http::StatusCode;

use crate::App;
use crate::auth::Access;
use crate::contacts::import::{self, ImportReport};
use crate::contacts::input::{ContactPatch, CreateContact, NewContact, UpdateContact};
use crate::contacts::store::{self, ListQuery};
use crate::contacts::{self, Contact, ContactPage, ContactRef};
use crate::events::{self, EventType};
use crate::groups;
use crate::http::paging::{self, Paging};
use crate::http::problem::ProblemDocument;
use crate::http::{Body, Problem, Request, Response, body, request, response};
use crate::stats::{self, Rows};


routes!(Contacts:
    list,
    create,
    import,
    get,
    update,
    delete,
);

procedures!(Contacts:
    list => "contacts.list",
    get => "contacts.getById",
    create => "contacts.create",
    update => "contacts.update",
    delete => "contacts.delete",
    import => "contacts.import" [body = "contacts"],
);

/// List live contacts, newest first.
#[utoipa::path(get, path = "/api/contacts", tag = "contacts",
    params(
        crate::http::paging::PageParams,
        ("search" = Option<String>, Query, description = "Substring of name, email or phone"),
        ("groupId" = Option<uuid::Uuid>, Query, description = "Only members of this group"),
    ),
    responses(
        (status = 200, body = ContactPage),
        (status = 404, description = "`groupId` names no live group", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub async fn list(app: &App, req: &Request) -> Result<Response<Body>, Problem> {
    let query = list_query(req)?;
    let mut tx = app.begin(req, Access::Read).await?;
    if let Some(group) = query.group
        && !groups::store::exists(&mut tx, group).await?
    {
        return Err(Problem::not_found("group"));
    }
    let (rows, total) = store::list(&mut tx, &query).await?;
    tx.commit().await?;

    // Written from the rows in place (see `contacts::json`); the same JSON as a `ContactPage`.
    let mut items = rows
        .iter()
        .map(ContactRef::from_row)
        .collect::<Result<Vec<_>, _>>()?;
    let next_cursor = paging::next_cursor(&mut items, query.limit, |item| item.id);
    response::json_text(
        StatusCode::OK,
        contacts::json::page(&items, total, next_cursor.as_deref()),
    )
}

fn list_query(req: &Request) -> Result<ListQuery, Problem> {
    let param = |name| request::query(req, name);
    let Paging {
        limit,
        offset,
        cursor,
    } = Paging::from_request(req)?;
    let search = match param("search").map(str::trim) {
        None | Some("") => None,
        Some(s) if s.chars().count() > 100 => {
            return Err(Problem::field("/search", "must be at most 100 characters"));
        }
        Some(s) => Some(s.to_owned()),
    };
    let group = param("groupId")
        .map(crate::domain::parse_uuid)
        .transpose()
        .map_err(|e| Problem::field("/groupId", e.0))?;
    Ok(ListQuery {
        limit,
        offset,
        cursor,
        search,
        group,
    })
}

/// Create a contact.
#[utoipa::path(post, path = "/api/contacts", tag = "contacts",
    request_body = CreateContact,
    responses(
        (status = 201, body = Contact),
        (status = 409, description = "A live contact has this phone or email", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub async fn create(app: &App, req: &Request) -> Result<Response<Body>, Problem> {
    let mut tx = app.begin(req, Access::Write).await?;
    let input: CreateContact = body::json(req)?;
    let new = NewContact::parse(input).map_err(Problem::invalid)?;
    let contact = store::insert(&mut tx, &new).await?;
    events::emit(&mut tx, EventType::ContactCreated, &contact).await?;
    tx.commit().await?;
    response::created("/api/contacts", contact.id, &contact)
}

/// Import up to 10,000 contacts from CSV (`text/csv`, with a header row) or a JSON array.
#[utoipa::path(post, path = "/api/contacts/import", tag = "contacts",
    request_body(description = "CSV with a header row (name, phone, email, optedOut; other columns become attributes) or a JSON array of contacts. Rows with invalid values are reported in the answer; a JSON row that is not a contact object makes the whole import 422.",
        content(
            (Vec<CreateContact> = "application/json"),
            (String = "text/csv"),
        )),
    responses(
        (status = 200, description = "Valid rows imported in one transaction; the rest reported", body = ImportReport),
    ))]
pub async fn import(app: &App, req: &Request) -> Result<Response<Body>, Problem> {
    let mut tx = app.begin(req, Access::Write).await?;
    let bytes = body::bytes(req, body::IMPORT_LIMIT)?;
    let parsed = match body::media_type(req).as_deref() {
        Some("text/csv") => import::parse_csv(bytes)?,
        Some(mt) if body::is_json(mt) => import::parse_json(body::decode(bytes)?)?,
        None => import::parse_json(body::decode(bytes)?)?,
        Some(_) => {
            return Err(Problem::unsupported_media_type(
                "text/csv or application/json",
            ));
        }
    };
    let import::Plan { rows, mut report } = import::plan(parsed);

    let (numbers, contacts): (Vec<usize>, Vec<NewContact>) = rows.into_iter().unzip();
    let inserted = store::insert_many(&mut tx, &contacts).await?;
    let inserted_ids: std::collections::HashSet<_> = inserted.iter().map(|c| c.id).collect();
    for (row, contact) in numbers.into_iter().zip(&contacts) {
        if !inserted_ids.contains(&contact.id) {
            report.duplicates.push(import::DuplicateRow {
                row,
                reason: "a live contact already has this phone or email".into(),
                duplicate_of_row: None,
            });
        }
    }
    report.duplicates.sort_by_key(|d| d.row);
    report.imported = inserted.len();
    events::emit_all(&mut tx, EventType::ContactCreated, &inserted).await?;
    stats::analyze_if_unseen(&mut tx, Rows::Contacts, inserted.len() as u64).await?;
    tx.commit().await?;
    response::ok(&report)
}

/// Get one contact.
#[utoipa::path(get, path = "/api/contacts/{id}", tag = "contacts",
    params(("id" = uuid::Uuid, Path)),
    responses(
        (status = 200, body = Contact),
        (status = 404, body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub async fn get(app: &App, req: &Request) -> Result<Response<Body>, Problem> {
    let id = request::path_uuid(req, "id")?;
    let mut tx = app.begin(req, Access::Read).await?;
    let contact = store::get(&mut tx, id)
        .await?
        .ok_or_else(|| Problem::not_found("contact"))?;
    tx.commit().await?;
    response::ok(&contact)
}

/// Change a contact.
#[utoipa::path(patch, path = "/api/contacts/{id}", tag = "contacts",
    params(("id" = uuid::Uuid, Path)),
    request_body = UpdateContact,
    responses(
        (status = 200, body = Contact),
        (status = 404, body = ProblemDocument, content_type = "application/problem+json"),
        (status = 409, body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub async fn update(app: &App, req: &Request) -> Result<Response<Body>, Problem> {
    let id = request::path_uuid(req, "id")?;
    let mut tx = app.begin(req, Access::Write).await?;
    let input: UpdateContact = body::json(req)?;
    let patch = ContactPatch::parse(input).map_err(Problem::invalid)?;
    let contact = store::update(&mut tx, id, &patch)
        .await?
        .ok_or_else(|| Problem::not_found("contact"))?;
    events::emit(&mut tx, EventType::ContactUpdated, &contact).await?;
    tx.commit().await?;
    response::ok(&contact)
}

/// Delete a contact (soft: it disappears from the API and from future campaigns). It
/// leaves every group it was in; each live group it left gets a `group_updated` event
/// with its new `memberCount`.
#[utoipa::path(delete, path = "/api/contacts/{id}", tag = "contacts",
    params(("id" = uuid::Uuid, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub async fn delete(app: &App, req: &Request) -> Result<Response<Body>, Problem> {
    let id = request::path_uuid(req, "id")?;
    let mut tx = app.begin(req, Access::Write).await?;
    let contact = store::soft_delete(&mut tx, id)
        .await?
        .ok_or_else(|| Problem::not_found("contact"))?;
    let left = groups::store::remove_contact(&mut tx, id).await?;
    events::emit(&mut tx, EventType::ContactDeleted, &contact).await?;
    events::emit_all(&mut tx, EventType::GroupUpdated, &left).await?;
    tx.commit().await?;
    response::no_content()
}
