//! The groups function: `/api/groups` and group membership.

use crate::App;
use crate::auth::Access;
use crate::domain::Offset;
use crate::events::{self, EventType};
use crate::groups::input::{ContactIds, CreateGroup, GroupPatch, MemberIds, NewGroup, UpdateGroup};
use crate::groups::store::{self, ListQuery};
use crate::groups::{AddReport, Group, GroupPage, MemberPage, RemoveReport};
use crate::http::paging;
use crate::http::problem::ProblemDocument;
use crate::http::{Body, Problem, Request, Response, body, request, response};
use crate::stats::{self, Rows};

routes!(Groups:
    list,
    create,
    get,
    update,
    delete,
    members,
    add_members,
    remove_members,
);

procedures!(Groups:
    list => "groups.list",
    get => "groups.getById",
    create => "groups.create",
    update => "groups.update",
    delete => "groups.delete",
    add_members => "groups.addContacts",
    remove_members => "groups.removeContacts",
    members => "groups.members",
);

/// List live groups, newest first.
#[utoipa::path(get, path = "/api/groups", tag = "groups",
    params(
        crate::http::paging::PageParams,
    ),
    responses(
        (status = 200, body = GroupPage),
    ))]
pub async fn list(app: &App, req: &Request) -> Result<Response<Body>, Problem> {
    let limit = paging::limit(req)?;
    let offset = request::query(req, "offset")
        .map(Offset::parse)
        .transpose()
        .map_err(|e| Problem::field("/offset", e.0))?;
    let cursor = paging::cursor(req)?;
    if offset.is_some() && cursor.is_some() {
        return Err(Problem::field(
            "/cursor",
            "use either offset or cursor, not both",
        ));
    }
    let query = ListQuery {
        limit,
        offset,
        cursor,
    };
    let mut tx = app.begin(req, Access::Read).await?;
    let (mut items, total) = store::list(&mut tx, &query).await?;
    tx.commit().await?;

    let next_cursor = paging::next_cursor(&mut items, limit, |g| g.id);
    response::ok(&GroupPage {
        items,
        total,
        next_cursor,
    })
}

/// Create a group.
#[utoipa::path(post, path = "/api/groups", tag = "groups",
    request_body = CreateGroup,
    responses(
        (status = 201, body = Group),
        (status = 409, description = "A live group has this name", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub async fn create(app: &App, req: &Request) -> Result<Response<Body>, Problem> {
    let mut tx = app.begin(req, Access::Write).await?;
    let input: CreateGroup = body::json(req)?;
    let new = NewGroup::parse(input).map_err(Problem::invalid)?;
    let group = store::insert(&mut tx, &new).await?;
    events::emit(&mut tx, EventType::GroupCreated, &group).await?;
    tx.commit().await?;
    response::created("/api/groups", group.id, &group)
}

/// Get one group.
#[utoipa::path(get, path = "/api/groups/{id}", tag = "groups",
    params(("id" = uuid::Uuid, Path)),
    responses(
        (status = 200, body = Group),
        (status = 404, body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub async fn get(app: &App, req: &Request) -> Result<Response<Body>, Problem> {
    let id = request::path_uuid(req, "id")?;
    let mut tx = app.begin(req, Access::Read).await?;
    let group = store::get(&mut tx, id)
        .await?
        .ok_or_else(|| Problem::not_found("group"))?;
    tx.commit().await?;
    response::ok(&group)
}

/// Change a group's name or description.
#[utoipa::path(patch, path = "/api/groups/{id}", tag = "groups",
    params(("id" = uuid::Uuid, Path)),
    request_body = UpdateGroup,
    responses(
        (status = 200, body = Group),
        (status = 404, body = ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "A live group has this name", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub async fn update(app: &App, req: &Request) -> Result<Response<Body>, Problem> {
    let id = request::path_uuid(req, "id")?;
    let mut tx = app.begin(req, Access::Write).await?;
    let input: UpdateGroup = body::json(req)?;
    let patch = GroupPatch::parse(input).map_err(Problem::invalid)?;
    let group = store::update(&mut tx, id, &patch)
        .await?
        .ok_or_else(|| Problem::not_found("group"))?;
    events::emit(&mut tx, EventType::GroupUpdated, &group).await?;
    tx.commit().await?;
    response::ok(&group)
}

/// Delete a group (soft: it disappears from the API; campaigns that name it keep their
/// reference, and its memberships are kept but no longer reachable).
#[utoipa::path(delete, path = "/api/groups/{id}", tag = "groups",
    params(("id" = uuid::Uuid, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub async fn delete(app: &App, req: &Request) -> Result<Response<Body>, Problem> {
    let id = request::path_uuid(req, "id")?;
    let mut tx = app.begin(req, Access::Write).await?;
    let group = store::soft_delete(&mut tx, id)
        .await?
        .ok_or_else(|| Problem::not_found("group"))?;
    events::emit(&mut tx, EventType::GroupDeleted, &group).await?;
    tx.commit().await?;
    response::no_content()
}

/// Page through a group's members, newest contact first.
#[utoipa::path(get, path = "/api/groups/{id}/contacts", tag = "groups",
    params(
        ("id" = uuid::Uuid, Path),
        crate::http::paging::CursorParams,
    ),
    responses(
        (status = 200, body = MemberPage),
        (status = 404, body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub async fn members(app: &App, req: &Request) -> Result<Response<Body>, Problem> {
    let id = request::path_uuid(req, "id")?;
    let limit = paging::limit(req)?;
    let cursor = paging::cursor(req)?;
    if request::query(req, "offset").is_some() {
        return Err(Problem::field(
            "/offset",
            "members are paged by cursor; the group's memberCount is the total",
        ));
    }
    let mut tx = app.begin(req, Access::Read).await?;
    if !store::exists(&mut tx, id).await? {
        return Err(Problem::not_found("group"));
    }
    let mut items = store::members(&mut tx, id, limit, cursor).await?;
    tx.commit().await?;

    let next_cursor = paging::next_cursor(&mut items, limit, |m| m.contact.id);
    response::ok(&MemberPage { items, next_cursor })
}

/// Add contacts to a group. Contacts that are members already stay members once; ids that
/// name no live contact of the tenant are reported and not added.
#[utoipa::path(post, path = "/api/groups/{id}/contacts", tag = "groups",
    params(("id" = uuid::Uuid, Path)),
    request_body = ContactIds,
    responses(
        (status = 200, body = AddReport),
        (status = 404, body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub async fn add_members(app: &App, req: &Request) -> Result<Response<Body>, Problem> {
    let id = request::path_uuid(req, "id")?;
    let mut tx = app.begin(req, Access::Write).await?;
    let input: ContactIds = body::json(req)?;
    let ids = MemberIds::parse(input).map_err(Problem::invalid)?;
    let report = store::add_members(&mut tx, id, &ids)
        .await?
        .ok_or_else(|| Problem::not_found("group"))?;
    // A request that changes no membership writes nothing, so it has nothing to announce.
    if report.added > 0 {
        events::emit(&mut tx, EventType::GroupUpdated, &report.group).await?;
    }
    stats::analyze_if_unseen(&mut tx, Rows::GroupMembers(id), report.added as u64).await?;
    tx.commit().await?;
    response::ok(&report)
}

/// Remove contacts from a group. Ids that are not members are reported.
#[utoipa::path(delete, path = "/api/groups/{id}/contacts", tag = "groups",
    params(("id" = uuid::Uuid, Path)),
    request_body = ContactIds,
    responses(
        (status = 200, body = RemoveReport),
        (status = 404, body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub async fn remove_members(app: &App, req: &Request) -> Result<Response<Body>, Problem> {
    let id = request::path_uuid(req, "id")?;
    let mut tx = app.begin(req, Access::Write).await?;
    let input: ContactIds = body::json(req)?;
    let ids = MemberIds::parse(input).map_err(Problem::invalid)?;
    let report = store::remove_members(&mut tx, id, &ids)
        .await?
        .ok_or_else(|| Problem::not_found("group"))?;
    if report.removed > 0 {
        events::emit(&mut tx, EventType::GroupUpdated, &report.group).await?;
    }
    tx.commit().await?;
    response::ok(&report)
}
