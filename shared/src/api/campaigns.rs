//! The campaigns function: `/api/campaigns`, and the status machine's actions.

use time::OffsetDateTime;

use crate::App;
use crate::auth::Access;
use crate::campaigns::input::{CampaignPatch, CreateCampaign, NewCampaign, UpdateCampaign};
use crate::campaigns::store::{self, ListQuery, Transitioned};
use crate::campaigns::{Action, Campaign, CampaignPage, Status, StatusChanged};
use crate::events::{self, EventType};
use crate::http::paging::{self, Paging};
use crate::http::problem::ProblemDocument;
use crate::http::{Body, Problem, Request, Response, body, request, response};


routes!(Campaigns:
    list,
    create,
    get,
    update,
    delete,
    start [wakes_sender],
    cancel,
    pause,
    resume [wakes_sender],
);

procedures!(Campaigns:
    list => "campaigns.list",
    get => "campaigns.getById",
    create => "campaigns.create",
    update => "campaigns.update",
    delete => "campaigns.delete",
    start => "campaigns.start",
    cancel => "campaigns.cancel",
    pause => "campaigns.pause",
    resume => "campaigns.resume",
);

/// List live campaigns, newest first.
#[utoipa::path(get, path = "/api/campaigns", tag = "campaigns",
    params(
        crate::http::paging::PageParams,
        ("status" = Option<Status>, Query, description = "Only campaigns in this status"),
    ),
    responses(
        (status = 200, body = CampaignPage),
    ))]
pub async fn list(app: &App, req: &Request) -> Result<Response<Body>, Problem> {
    let query = list_query(req)?;
    let mut tx = app.begin(req, Access::Read).await?;
    let (mut items, total) = store::list(&mut tx, &query).await?;
    tx.commit().await?;

    let next_cursor = paging::next_cursor(&mut items, query.limit, |item| item.id);
    response::ok(&CampaignPage {
        items,
        total,
        next_cursor,
    })
}

fn list_query(req: &Request) -> Result<ListQuery, Problem> {
    let param = |name| request::query(req, name);
    let Paging {
        limit,
        offset,
        cursor,
    } = Paging::from_request(req)?;
    let status = param("status")
        .map(|s| {
            Status::parse(s).ok_or_else(|| {
                Problem::field(
                    "/status",
                    "must be one of draft, scheduled, running, paused, completed, cancelled",
                )
            })
        })
        .transpose()?;
    Ok(ListQuery {
        limit,
        offset,
        cursor,
        status,
    })
}

/// Create a draft campaign that will send a template to a group.
#[utoipa::path(post, path = "/api/campaigns", tag = "campaigns",
    request_body = CreateCampaign,
    responses(
        (status = 201, body = Campaign),
        (status = 422, description = "Invalid input, or the template or group is not a live one of this tenant", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub async fn create(app: &App, req: &Request) -> Result<Response<Body>, Problem> {
    let mut tx = app.begin(req, Access::Write).await?;
    let input: CreateCampaign = body::json(req)?;
    let new = NewCampaign::parse(input).map_err(Problem::invalid)?;
    store::check_references(&mut tx, Some(new.template_id), Some(new.group_id)).await?;
    let campaign = store::insert(&mut tx, &new).await?;
    events::emit(&mut tx, EventType::CampaignCreated, &campaign).await?;
    tx.commit().await?;
    response::created("/api/campaigns", campaign.id, &campaign)
}

/// Get one campaign, with its counters.
#[utoipa::path(get, path = "/api/campaigns/{id}", tag = "campaigns",
    params(("id" = uuid::Uuid, Path)),
    responses(
        (status = 200, body = Campaign),
        (status = 404, body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub async fn get(app: &App, req: &Request) -> Result<Response<Body>, Problem> {
    let id = request::path_uuid(req, "id")?;
    let mut tx = app.begin(req, Access::Read).await?;
    let campaign = store::get(&mut tx, id)
        .await?
        .ok_or_else(|| Problem::not_found("campaign"))?;
    tx.commit().await?;
    response::ok(&campaign)
}

/// Change a campaign; only a draft or scheduled one.
#[utoipa::path(patch, path = "/api/campaigns/{id}", tag = "campaigns",
    params(("id" = uuid::Uuid, Path)),
    request_body = UpdateCampaign,
    responses(
        (status = 200, body = Campaign),
        (status = 404, body = ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "The campaign is past scheduled; the detail names its current status", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub async fn update(app: &App, req: &Request) -> Result<Response<Body>, Problem> {
    let id = request::path_uuid(req, "id")?;
    let mut tx = app.begin(req, Access::Write).await?;
    let input: UpdateCampaign = body::json(req)?;
    let patch = CampaignPatch::parse(input).map_err(Problem::invalid)?;
    let current = store::lock(&mut tx, id)
        .await?
        .ok_or_else(|| Problem::not_found("campaign"))?;
    if !current.status.is_editable() {
        return Err(Problem::conflict(format!(
            "the campaign's current status is {}: only draft and scheduled campaigns can be changed",
            current.status
        ))
        .with_current_status(current.status));
    }
    if current.status == Status::Scheduled && patch.scheduled_at == Some(None) {
        return Err(Problem::field(
            "/scheduledAt",
            "a scheduled campaign keeps a schedule; move it, or cancel the campaign",
        ));
    }
    store::check_references(&mut tx, patch.template_id, patch.group_id).await?;
    let campaign = store::update(&mut tx, id, &patch)
        .await?
        .ok_or_else(|| Problem::not_found("campaign"))?;
    events::emit(&mut tx, EventType::CampaignUpdated, &campaign).await?;
    tx.commit().await?;
    response::ok(&campaign)
}

/// Delete a campaign (soft: it disappears from the API; its messages stay in the history).
/// A running campaign must be paused or cancelled first.
#[utoipa::path(delete, path = "/api/campaigns/{id}", tag = "campaigns",
    params(("id" = uuid::Uuid, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, body = ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "The campaign is running", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub async fn delete(app: &App, req: &Request) -> Result<Response<Body>, Problem> {
    let id = request::path_uuid(req, "id")?;
    let mut tx = app.begin(req, Access::Write).await?;
    let current = store::lock(&mut tx, id)
        .await?
        .ok_or_else(|| Problem::not_found("campaign"))?;
    if !current.status.is_deletable() {
        return Err(Problem::conflict(format!(
            "the campaign's current status is {}: pause or cancel it before deleting it",
            current.status
        ))
        .with_current_status(current.status));
    }
    let campaign = store::soft_delete(&mut tx, id)
        .await?
        .ok_or_else(|| Problem::not_found("campaign"))?;
    events::emit(&mut tx, EventType::CampaignDeleted, &campaign).await?;
    tx.commit().await?;
    response::no_content()
}

/// Start a draft campaign: it runs now, or becomes scheduled when its `scheduledAt` is in
/// the future. A scheduled campaign whose time has come runs.
#[utoipa::path(post, path = "/api/campaigns/{id}/start", tag = "campaigns",
    params(("id" = uuid::Uuid, Path)),
    responses(
        (status = 200, description = "Now running or scheduled", body = Campaign),
        (status = 404, body = ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "Not possible from the current status, which the detail names, or the tenant has no delivery provider", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub async fn start(app: &App, req: &Request) -> Result<Response<Body>, Problem> {
    let now = OffsetDateTime::now_utc();
    act(app, req, "start", |c| store::start_action(c, now)).await
}

/// What the campaign engine adds to a transition, in its transaction: a campaign cannot
/// start without a delivery provider; a cancel cancels the queued messages at once; a
/// start or resume wakes the sender.
async fn engine_side(
    app: &App,
    tx: &mut crate::db::TenantTx,
    campaign: &Campaign,
    to: Status,
) -> Result<(), Problem> {
    match to {
        Status::Running | Status::Scheduled => {
            if !app.default_log_provider() && crate::providers::store::get(tx).await?.is_none() {
                return Err(super::provider::missing_provider());
            }
            if to == Status::Running {
                crate::engine::wake(tx).await?;
            }
        }
        Status::Cancelled => {
            crate::engine::queue::cancel_queued(tx, campaign.id).await?;
        }
        _ => {}
    }
    Ok(())
}

/// Cancel a draft, scheduled, running or paused campaign.
#[utoipa::path(post, path = "/api/campaigns/{id}/cancel", tag = "campaigns",
    params(("id" = uuid::Uuid, Path)),
    responses(
        (status = 200, body = Campaign),
        (status = 404, body = ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "Not possible from the current status, which the detail names", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub async fn cancel(app: &App, req: &Request) -> Result<Response<Body>, Problem> {
    act(app, req, "cancel", |_| Action::Cancel).await
}

/// Pause a running campaign.
#[utoipa::path(post, path = "/api/campaigns/{id}/pause", tag = "campaigns",
    params(("id" = uuid::Uuid, Path)),
    responses(
        (status = 200, body = Campaign),
        (status = 404, body = ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "Not possible from the current status, which the detail names", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub async fn pause(app: &App, req: &Request) -> Result<Response<Body>, Problem> {
    act(app, req, "pause", |_| Action::Pause).await
}

/// Resume a paused campaign.
#[utoipa::path(post, path = "/api/campaigns/{id}/resume", tag = "campaigns",
    params(("id" = uuid::Uuid, Path)),
    responses(
        (status = 200, body = Campaign),
        (status = 404, body = ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "Not possible from the current status, which the detail names", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub async fn resume(app: &App, req: &Request) -> Result<Response<Body>, Problem> {
    act(app, req, "resume", |_| Action::Resume).await
}

/// One status transition: one `campaign_status_changed` event, in the same transaction.
async fn act(
    app: &App,
    req: &Request,
    verb: &str,
    choose: impl FnOnce(&Campaign) -> Action,
) -> Result<Response<Body>, Problem> {
    let id = request::path_uuid(req, "id")?;
    let mut tx = app.begin(req, Access::Write).await?;
    let Transitioned { campaign, from, to } = store::act(&mut tx, id, verb, choose).await?;
    engine_side(app, &mut tx, &campaign, to).await?;
    let payload = StatusChanged {
        campaign: &campaign,
        from,
        to,
    };
    events::emit(&mut tx, EventType::CampaignStatusChanged, &payload).await?;
    tx.commit().await?;
    response::ok(&campaign)
}
