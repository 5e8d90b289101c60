//! API keys (`/api/api-keys`, served by the tenants function). Owners and admins manage
//! them with their own tokens; a key cannot manage keys, so a leaked key cannot mint
//! itself successors.

use http::StatusCode;

use crate::App;
use crate::apikeys::{self, ApiKeyList, CreateApiKey, CreatedApiKey, Secret, store};
use crate::auth::Access;
use crate::db::TenantTx;
use crate::domain::Actor;
use crate::http::problem::ProblemDocument;
use crate::http::{Body, Problem, Request, Response, body, request, response};

/// Create an API key. The answer holds the key itself, this once; only its hash is kept.
#[utoipa::path(post, path = "/api/api-keys", tag = "api-keys",
    request_body = CreateApiKey,
    responses(
        (status = 201, body = CreatedApiKey),
        (status = 403, description = "Not an owner or admin, or an API key", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "The tenant holds the most live keys it may", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub async fn create(app: &App, req: &Request) -> Result<Response<Body>, Problem> {
    let mut tx = manager(app, req).await?;
    let input: CreateApiKey = body::json(req)?;
    let new = input
        .parse(time::OffsetDateTime::now_utc())
        .map_err(Problem::invalid)?;
    let secret = Secret::generate();
    let api_key = store::insert(&mut tx, &new, &secret).await?;
    tx.commit().await?;
    let id = api_key.id;
    let created = CreatedApiKey {
        api_key,
        key: secret.expose().to_owned(),
    };
    response::created("/api/api-keys", id, &created)
}

/// The tenant's live API keys, masked, newest first.
#[utoipa::path(get, path = "/api/api-keys", tag = "api-keys",
    responses((status = 200, body = ApiKeyList)))]
pub async fn list(app: &App, req: &Request) -> Result<Response<Body>, Problem> {
    let mut tx = manager(app, req).await?;
    let items = store::list(&mut tx).await?;
    tx.commit().await?;
    response::json(StatusCode::OK, &ApiKeyList { items })
}

/// Revoke an API key: the next request made with it is refused (401).
#[utoipa::path(delete, path = "/api/api-keys/{id}", tag = "api-keys",
    params(("id" = uuid::Uuid, Path)),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "No such live key", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub async fn revoke(app: &App, req: &Request) -> Result<Response<Body>, Problem> {
    let id = request::path_uuid(req, "id")?;
    let mut tx = manager(app, req).await?;
    store::revoke(&mut tx, id).await?;
    tx.commit().await?;
    response::no_content()
}

/// An owner's or admin's transaction; never an API key's.
async fn manager(app: &App, req: &Request) -> Result<TenantTx, Problem> {
    let tx = app.begin(req, Access::Admin).await?;
    if matches!(tx.actor(), Actor::ApiKey { .. }) {
        return Err(Problem::forbidden(format!(
            "API keys are managed with a member's token, not with a key ({}…)",
            apikeys::PREFIX
        )));
    }
    Ok(tx)
}
