//! The messages function: `/api/messages`, the history of every message and its status.

use crate::App;
use crate::auth::Access;
use crate::domain::{parse_time, parse_uuid};
use crate::events::{self, EventType};
use crate::http::paging::{self, Paging};
use crate::http::problem::ProblemDocument;
use crate::http::{Body, Problem, Request, Response, body, request, response};
use crate::messages::input::{CreateMessage, NewMessage, StatusReport, UpdateStatus};
use crate::messages::store::{self, ListQuery, NewRow, Outcome};
use crate::messages::{
    Channel, Message, MessagePage, MessageStatus, StatusChanged, StatusUpdateResult,
};


routes!(Messages:
    list,
    create [wakes_sender],
    get,
    update_status,
);

procedures!(Messages:
    list => "messagesHistory.list",
    get => "messagesHistory.getById",
    create => "messagesHistory.create",
    update_status => "messagesHistory.updateStatus",
);

/// List messages, newest first. Messages of deleted contacts and campaigns stay listed.
#[utoipa::path(get, path = "/api/messages", tag = "messages",
    params(
        crate::http::paging::PageParams,
        ("campaignId" = Option<uuid::Uuid>, Query, description = "Only this campaign's messages"),
        ("contactId" = Option<uuid::Uuid>, Query, description = "Only messages to this contact"),
        ("status" = Option<MessageStatus>, Query, description = "Only messages in this status"),
        ("from" = Option<String>, Query, format = DateTime, description = "Created at or after (RFC 3339)"),
        ("to" = Option<String>, Query, format = DateTime, description = "Created before (RFC 3339)"),
    ),
    responses(
        (status = 200, body = MessagePage),
    ))]
pub async fn list(app: &App, req: &Request) -> Result<Response<Body>, Problem> {
    let query = list_query(req)?;
    let mut tx = app.begin(req, Access::Read).await?;
    let (mut items, total) = store::list(&mut tx, &query).await?;
    tx.commit().await?;

    let next_cursor = paging::next_cursor(&mut items, query.limit, |item| item.id);
    response::ok(&MessagePage {
        items,
        total,
        next_cursor,
    })
}

fn list_query(req: &Request) -> Result<ListQuery, Problem> {
    let param = |name| request::query(req, name);
    let field =
        |pointer: &'static str| move |e: crate::domain::Invalid| Problem::field(pointer, e.0);
    let Paging {
        limit,
        offset,
        cursor,
    } = Paging::from_request(req)?;
    let campaign_id = param("campaignId")
        .map(parse_uuid)
        .transpose()
        .map_err(field("/campaignId"))?;
    let contact_id = param("contactId")
        .map(parse_uuid)
        .transpose()
        .map_err(field("/contactId"))?;
    let status = param("status")
        .map(|s| {
            MessageStatus::parse(s).ok_or_else(|| {
                Problem::field(
                    "/status",
                    "must be one of queued, sending, sent, delivered, read, failed, cancelled",
                )
            })
        })
        .transpose()?;
    let from = param("from")
        .map(parse_time)
        .transpose()
        .map_err(field("/from"))?;
    let to = param("to")
        .map(parse_time)
        .transpose()
        .map_err(field("/to"))?;
    if let (Some(from), Some(to)) = (from, to)
        && from >= to
    {
        return Err(Problem::field("/to", "must be later than from"));
    }
    Ok(ListQuery {
        limit,
        offset,
        cursor,
        campaign_id,
        contact_id,
        status,
        from,
        to,
    })
}

/// Queue a direct message to a contact.
#[utoipa::path(post, path = "/api/messages", tag = "messages",
    request_body = CreateMessage,
    responses(
        (status = 201, description = "Queued", body = Message),
        (status = 409, description = "The contact has opted out", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "Invalid input, no such live contact, or the contact has no address for the channel", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub async fn create(app: &App, req: &Request) -> Result<Response<Body>, Problem> {
    let mut tx = app.begin(req, Access::Write).await?;
    let input: CreateMessage = body::json(req)?;
    let new = NewMessage::parse(input).map_err(Problem::invalid)?;
    let contact = store::addressee(&mut tx, new.contact_id)
        .await?
        .ok_or_else(|| Problem::field("/contactId", "no such contact"))?;
    if contact.opted_out {
        return Err(Problem::conflict("the contact has opted out of messages"));
    }
    let channel = new.channel.unwrap_or(match contact.phone {
        Some(_) => Channel::Sms,
        None => Channel::Email,
    });
    let recipient = match channel {
        Channel::Sms => contact
            .phone
            .ok_or_else(|| Problem::field("/channel", "the contact has no phone for sms"))?,
        Channel::Email => contact
            .email
            .ok_or_else(|| Problem::field("/channel", "the contact has no email address"))?,
    };
    let row = NewRow {
        id: new.id,
        campaign_id: None,
        contact_id: new.contact_id,
        channel,
        recipient: &recipient,
        body: &new.body,
    };
    let message = store::insert(&mut tx, &row).await?;
    events::emit(&mut tx, EventType::MessageCreated, &message).await?;
    crate::engine::wake(&mut tx).await?;
    tx.commit().await?;
    response::created("/api/messages", message.id, &message)
}

/// Get one message.
#[utoipa::path(get, path = "/api/messages/{id}", tag = "messages",
    params(("id" = uuid::Uuid, Path)),
    responses(
        (status = 200, body = Message),
        (status = 404, body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub async fn get(app: &App, req: &Request) -> Result<Response<Body>, Problem> {
    let id = request::path_uuid(req, "id")?;
    let mut tx = app.begin(req, Access::Read).await?;
    let message = store::get(&mut tx, id)
        .await?
        .ok_or_else(|| Problem::not_found("message"))?;
    tx.commit().await?;
    response::ok(&message)
}

/// Report a delivery status. Statuses only move forward (queued → sending → sent →
/// delivered → read; failed, with an error, before delivered); a late report that would
/// move the message backwards or sideways is not applied, and the answer says why.
#[utoipa::path(post, path = "/api/messages/{id}/status", tag = "messages",
    params(("id" = uuid::Uuid, Path)),
    request_body = UpdateStatus,
    responses(
        (status = 200, description = "Applied, or ignored with the reason", body = StatusUpdateResult),
        (status = 404, body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub async fn update_status(app: &App, req: &Request) -> Result<Response<Body>, Problem> {
    let id = request::path_uuid(req, "id")?;
    let mut tx = app.begin(req, Access::Write).await?;
    let input: UpdateStatus = body::json(req)?;
    let report = StatusReport::parse(input).map_err(Problem::invalid)?;
    let outcome = store::update_status(&mut tx, id, &report)
        .await?
        .ok_or_else(|| Problem::not_found("message"))?;
    let result = match outcome {
        Outcome::Applied { message, from } => {
            let payload = StatusChanged {
                message: &message,
                from,
                to: report.status,
            };
            events::emit(&mut tx, EventType::MessageStatusChanged, &payload).await?;
            StatusUpdateResult {
                applied: true,
                message,
                from: Some(from),
                reason: None,
            }
        }
        Outcome::Ignored { message, reason } => StatusUpdateResult {
            applied: false,
            message,
            from: None,
            reason: Some(reason.to_string()),
        },
    };
    tx.commit().await?;
    response::ok(&result)
}
