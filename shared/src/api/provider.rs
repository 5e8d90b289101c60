//! The tenant's delivery provider (`GET/PUT /api/provider`, served by the tenants
//! function) and Twilio's status callbacks (`POST /api/providers/twilio/status`).

use lambda_http::RequestExt;
use uuid::Uuid;

use crate::App;
use crate::auth::Access;
use crate::db::TenantTx;
use crate::engine;
use crate::http::problem::ProblemDocument;
use crate::http::{Body, Problem, Request, Response, body, request, response};
use crate::providers::config::ProviderView;
use crate::providers::input::{NewProvider, PutProvider};
use crate::providers::{ProviderConfig, ProviderKind, store, twilio};

/// The tenant's delivery provider, credentials masked. Owners and admins only.
#[utoipa::path(get, path = "/api/provider", tag = "tenants",
    responses(
        (status = 200, body = ProviderView),
        (status = 404, description = "No provider configured (and no default applies)", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub async fn get(app: &App, req: &Request) -> Result<Response<Body>, Problem> {
    let mut tx = app.begin(req, Access::Admin).await?;
    let tenant = tx.tenant();
    let config = store::get(&mut tx).await?;
    tx.commit().await?;
    match config {
        Some(c) => response::ok(&c.view(true, false)),
        None if app.default_log_provider() => {
            response::ok(&ProviderConfig::default_log(tenant).view(false, false))
        }
        None => Err(Problem::not_found("delivery provider")),
    }
}

/// Set the tenant's delivery provider. For `http`, the answer shows the generated signing
/// secret in full, once. Owners and admins only.
#[utoipa::path(put, path = "/api/provider", tag = "tenants",
    request_body = PutProvider,
    responses(
        (status = 200, body = ProviderView),
        (status = 422, body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub async fn put(app: &App, req: &Request) -> Result<Response<Body>, Problem> {
    let mut tx = app.begin(req, Access::Admin).await?;
    let input: PutProvider = body::json(req)?;
    let new = NewProvider::parse(input).map_err(Problem::invalid)?;
    let config = store::put(&mut tx, &new).await?;
    tx.commit().await?;
    tracing::info!(kind = config.kind.as_str(), "delivery provider set");
    response::ok(&config.view(true, true))
}

/// The form Twilio posts to the status callback: the fields Herald reads. Twilio sends more,
/// all of them covered by its signature.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // the OpenAPI schema of a form the handler reads field by field
pub struct TwilioStatusCallback {
    #[schema(rename = "MessageSid")]
    message_sid: String,
    /// `queued`, `sent`, `delivered`, `read`, `failed`, `undelivered`, …
    #[schema(rename = "MessageStatus")]
    message_status: String,
    /// The older name of `MessageStatus`.
    #[schema(rename = "SmsStatus")]
    sms_status: Option<String>,
    #[schema(rename = "ErrorCode")]
    error_code: Option<String>,
}

/// Twilio's status callback for one message. Not authenticated by a token: the
/// `X-Twilio-Signature` over this URL and the form parameters must verify under the auth
/// token of the tenant the URL names; otherwise 403 and nothing changes.
#[utoipa::path(post, path = "/api/providers/twilio/status", tag = "tenants",
    params(
        ("tenantId" = Uuid, Query, description = "Set by Herald in the StatusCallback URL"),
        ("messageId" = Uuid, Query, description = "Set by Herald in the StatusCallback URL"),
        ("X-Twilio-Signature" = String, Header),
    ),
    request_body(content = TwilioStatusCallback, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 204, description = "Recorded (or ignored: a status that does not move the message forward)"),
        (status = 403, description = "The signature does not verify", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub async fn twilio_status(app: &App, req: &Request) -> Result<Response<Body>, Problem> {
    let uuid = |name: &str| {
        request::query(req, name)
            .and_then(|v| Uuid::try_parse(v).ok())
            .ok_or_else(|| Problem::malformed(format!("query parameter `{name}` must be a UUID")))
    };
    let tenant = uuid("tenantId")?;
    let message = uuid("messageId")?;
    let params: Vec<(String, String)> = form_urlencoded::parse(body::bytes(req, 64 * 1024)?)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mut tx = signed_by_tenant(app, req, tenant, &params).await?;
    if let Some((report, opted_out)) = twilio::status_report(&params) {
        engine::queue::apply_report(&mut tx, message, &report, opted_out).await?;
    }
    tx.commit().await?;
    response::no_content()
}

/// The tenant's transaction, once the `X-Twilio-Signature` over this URL and `params`
/// verifies under the tenant's auth token, read under its own context (DESIGN.md rule 7).
async fn signed_by_tenant(
    app: &App,
    req: &Request,
    tenant: Uuid,
    params: &[(String, String)],
) -> Result<TenantTx, Problem> {
    let refused = || Problem::forbidden("the X-Twilio-Signature does not verify");
    let signature = request::header(req, "x-twilio-signature").ok_or_else(refused)?;
    let url = callback_url(app, req).ok_or_else(|| {
        tracing::error!("HERALD_PUBLIC_URL is not set: Twilio callbacks cannot be verified");
        refused()
    })?;
    let mut tx = app.db().begin_service(tenant, "provider-callback").await?;
    let token = match store::get(&mut tx).await? {
        Some(c) if c.kind == ProviderKind::Twilio => c.secret().map(|s| s.expose().to_owned()),
        _ => None,
    };
    if !token.is_some_and(|t| twilio::verify(&t, &url, params, signature)) {
        tx.rollback().await?;
        return Err(refused());
    }
    Ok(tx)
}

/// The URL Twilio requested, as it signed it: Herald's public base URL, the path and the
/// query string exactly as received.
fn callback_url(app: &App, req: &Request) -> Option<String> {
    let base = app.public_url()?;
    let origin = base.as_str().trim_end_matches('/');
    let path = req.raw_http_path();
    Some(match req.uri().query() {
        Some(q) if !q.is_empty() => format!("{origin}{path}?{q}"),
        _ => format!("{origin}{path}"),
    })
}

/// The 409 for a start without a provider.
pub fn missing_provider() -> Problem {
    Problem::conflict(
        "this tenant has no delivery provider: configure one with PUT /api/provider \
         (kind http, twilio or log) before starting a campaign",
    )
}
