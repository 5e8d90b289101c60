//! The tenants function: tenants and their members (and, in sibling modules, the
//! provider, API keys and the event history).
//!
//! `POST /api/tenants` and `GET /api/tenants` act outside any one tenant: they use the
//! verified caller ([`App::caller`]) and the definer functions. The members routes run in
//! the named tenant, for owners and admins only ([`Access::Admin`]).
//!
//! Rules: only an owner makes, demotes or removes an owner (an admin gets 403); a tenant
//! always keeps an owner (409). Member changes emit no event: DESIGN.md's event list has
//! no member type.

use http::StatusCode;
use lambda_http::RequestExt;
use uuid::Uuid;

use super::{history, keys, provider};
use crate::App;
use crate::auth::Access;
use crate::domain::{Limit, Offset};
use crate::http::problem::Kind;
use crate::http::problem::ProblemDocument;
use crate::http::{Body, Problem, Request, Response, body, request, response};
use crate::idempotency;
use crate::tenants::store::{self, MemberCursor, MemberQuery};
use crate::tenants::{
    Change, CreateTenant, Member, MemberPage, PutMember, Sub, Tenant, TenantList, TenantRow,
    check_change,
};

routes!(Tenants:
    create [tenantless],
    list [tenantless],
    members,
    put_member,
    remove_member,
    get in provider,
    put in provider,
    twilio_status in provider [tenantless],
    create in keys [secret_answer],
    list in keys,
    revoke in keys,
    list in history,
);

/// Create a tenant; the caller (the token's `sub`) becomes its owner. Needs no
/// `X-Tenant-ID`. With an `Idempotency-Key`, the tenant's id is derived from the caller
/// and the key: a retry finds the tenant made and answers it again
/// (`Idempotent-Replayed: true`) instead of making a second one.
#[utoipa::path(post, path = "/api/tenants", tag = "tenants",
    request_body = CreateTenant,
    params(
        ("Idempotency-Key" = Option<String>, Header, description = "Makes the creation safe to retry: the same key and name answer the same tenant; the same key with another name is 422"),
    ),
    responses(
        (status = 201, description = "Created, with the caller as owner", body = Tenant),
    ))]
pub async fn create(app: &App, req: &Request) -> Result<Response<Body>, Problem> {
    let claims = app.caller(req).await?;
    let key = idempotency::Key::from_header(req)?;
    let input: CreateTenant = body::json(req)?;
    let name = input.parse().map_err(Problem::invalid)?;
    let sub = Sub::parse(&claims.sub)
        .map_err(|e| Problem::unauthenticated(format!("the token's sub {e}")))?;
    let id = match &key {
        Some(key) => idempotency::tenant_id(sub.as_str(), key),
        None => Uuid::now_v7(),
    };
    let created = app
        .db()
        .create_tenant::<TenantRow>(id, name.as_str(), sub.as_str())
        .await;
    match created {
        Ok(row) => response::json(StatusCode::CREATED, &Tenant::try_from(row)?),
        Err(err) if key.is_some() && crate::db::unique_violation(&err).is_some() => {
            let rows: Vec<TenantRow> = app.db().tenants_of(sub.as_str()).await?;
            match rows.into_iter().find(|t| t.id == id) {
                Some(row) if row.name == name.as_str() => {
                    let mut reply = response::json(StatusCode::CREATED, &Tenant::try_from(row)?)?;
                    idempotency::mark_replayed(&mut reply);
                    Ok(reply)
                }
                Some(_) => Err(Problem::new(
                    Kind::IdempotencyKeyReused,
                    "this Idempotency-Key created a tenant with another name; use a new key",
                )),
                None => Err(Problem::new(
                    Kind::IdempotencyKeyInUse,
                    "this Idempotency-Key created a tenant you are no longer a member of",
                )),
            }
        }
        Err(err) => Err(err.into()),
    }
}

/// The caller's tenants with the caller's role in each, oldest first. Needs no
/// `X-Tenant-ID`.
#[utoipa::path(get, path = "/api/tenants", tag = "tenants",
    responses(
        (status = 200, body = TenantList),
    ))]
pub async fn list(app: &App, req: &Request) -> Result<Response<Body>, Problem> {
    let claims = app.caller(req).await?;
    let rows: Vec<TenantRow> = app.db().tenants_of(&claims.sub).await?;
    let items = rows
        .into_iter()
        .map(Tenant::try_from)
        .collect::<Result<_, _>>()?;
    response::ok(&TenantList { items })
}

/// The current tenant's members, by `sub`. Owners and admins only.
#[utoipa::path(get, path = "/api/tenant/members", tag = "tenants",
    params(
        crate::http::paging::PageParams,
    ),
    responses(
        (status = 200, body = MemberPage),
        (status = 403, description = "Not an owner or admin of the tenant", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub async fn members(app: &App, req: &Request) -> Result<Response<Body>, Problem> {
    let query = member_query(req)?;
    let mut tx = app.begin(req, Access::Admin).await?;
    let (mut items, total) = store::list(&mut tx, &query).await?;
    tx.commit().await?;

    let limit = query.limit.get() as usize;
    let next_cursor = (items.len() > limit).then(|| {
        items.truncate(limit);
        MemberCursor::after(&items[limit - 1].sub).encode()
    });
    response::ok(&MemberPage {
        items,
        total,
        next_cursor,
    })
}

/// Add a member with a role, or change a member's role. Owners and admins only; only an
/// owner may make or demote an owner, and the last owner stays one.
#[utoipa::path(put, path = "/api/tenant/members/{sub}", tag = "tenants",
    params(("sub" = String, Path, description = "The member's token subject, 1 to 255 characters (percent-encoded)")),
    request_body = PutMember,
    responses(
        (status = 201, description = "Added", body = Member),
        (status = 200, description = "Role changed (or already so)", body = Member),
        (status = 403, description = "Not an owner or admin, or an admin touching an owner", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "The change would leave the tenant without an owner", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub async fn put_member(app: &App, req: &Request) -> Result<Response<Body>, Problem> {
    let sub = path_sub(req)?;
    let mut tx = app.begin(req, Access::Admin).await?;
    let input: PutMember = body::json(req)?;
    let role = input.parse().map_err(Problem::invalid)?;

    let owners = store::lock_owners(&mut tx).await?;
    let current = store::role_for_update(&mut tx, &sub).await?;
    check_change(tx.role(), current, Change::Set(role), owners)?;
    let (status, member) = match current {
        Some(_) => (StatusCode::OK, store::set_role(&mut tx, &sub, role).await?),
        None => match store::insert(&mut tx, &sub, role).await? {
            Some(member) => (StatusCode::CREATED, member),
            None => {
                return Err(Problem::conflict(
                    "the member was added by another request meanwhile; retry",
                ));
            }
        },
    };
    tx.commit().await?;
    response::json(status, &member)
}

/// Remove a member. Owners and admins only; only an owner may remove an owner, and the
/// last owner stays.
#[utoipa::path(delete, path = "/api/tenant/members/{sub}", tag = "tenants",
    params(("sub" = String, Path, description = "The member's token subject, 1 to 255 characters (percent-encoded)")),
    responses(
        (status = 204, description = "Removed"),
        (status = 403, description = "Not an owner or admin, or an admin removing an owner", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, body = ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "The member is the tenant's last owner", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub async fn remove_member(app: &App, req: &Request) -> Result<Response<Body>, Problem> {
    let sub = path_sub(req)?;
    let mut tx = app.begin(req, Access::Admin).await?;
    let owners = store::lock_owners(&mut tx).await?;
    let current = store::role_for_update(&mut tx, &sub).await?;
    check_change(tx.role(), current, Change::Remove, owners)?;
    store::remove(&mut tx, &sub).await?;
    tx.commit().await?;
    response::no_content()
}

fn path_sub(req: &Request) -> Result<Sub, Problem> {
    let raw = req
        .path_parameters_ref()
        .and_then(|p| p.first("sub"))
        .unwrap_or("");
    Sub::parse(raw).map_err(|e| Problem::malformed(format!("path parameter `sub` {e}")))
}

fn member_query(req: &Request) -> Result<MemberQuery, Problem> {
    let param = |name| request::query(req, name);
    let limit = Limit::parse(param("limit")).map_err(|e| Problem::field("/limit", e.0))?;
    let offset = param("offset")
        .map(Offset::parse)
        .transpose()
        .map_err(|e| Problem::field("/offset", e.0))?;
    let cursor = param("cursor")
        .map(MemberCursor::parse)
        .transpose()
        .map_err(|e| Problem::field("/cursor", e.0))?;
    if offset.is_some() && cursor.is_some() {
        return Err(Problem::field(
            "/cursor",
            "use either offset or cursor, not both",
        ));
    }
    Ok(MemberQuery {
        limit,
        offset,
        cursor,
    })
}
