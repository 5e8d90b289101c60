//! The templates function: `/api/templates`.

use crate::App;
use crate::auth::Access;
use crate::contacts;
use crate::events::{self, EventType};
use crate::http::paging::{self, Paging};
use crate::http::problem::ProblemDocument;
use crate::http::{Body, Problem, Request, Response, body, request, response};
use crate::templates::input::{
    CreateTemplate, NewTemplate, PreviewInput, PreviewRequest, TemplatePatch, UpdateTemplate,
};
use crate::templates::render::{CampaignVars, Compiled, ContactVars, RenderContext, SyntaxError};
use crate::templates::store::{self, ListQuery};
use crate::templates::{Channel, Preview, Template, TemplatePage};


routes!(Templates:
    list,
    create,
    get,
    update,
    delete,
    preview,
);

procedures!(Templates:
    list => "messageTemplates.list",
    get => "messageTemplates.getById",
    create => "messageTemplates.create",
    update => "messageTemplates.update",
    delete => "messageTemplates.delete",
    preview => "messageTemplates.preview",
);

/// List live templates, newest first.
#[utoipa::path(get, path = "/api/templates", tag = "templates",
    params(
        crate::http::paging::PageParams,
        ("channel" = Option<Channel>, Query, description = "Only templates of this channel"),
    ),
    responses(
        (status = 200, body = TemplatePage),
    ))]
pub async fn list(app: &App, req: &Request) -> Result<Response<Body>, Problem> {
    let query = list_query(req)?;
    let mut tx = app.begin(req, Access::Read).await?;
    let (mut items, total) = store::list(&mut tx, &query).await?;
    tx.commit().await?;

    let next_cursor = paging::next_cursor(&mut items, query.limit, |item| item.id);
    response::ok(&TemplatePage {
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
    let channel = param("channel")
        .map(Channel::parse)
        .transpose()
        .map_err(|e| Problem::field("/channel", e.0))?;
    Ok(ListQuery {
        limit,
        offset,
        cursor,
        channel,
    })
}

/// Create a template. The subject and body are checked and compiled, and the variables
/// they use are stored; a template that does not compile is a 422 whose `errors` point at
/// `/body` or `/subject` and whose detail names the line and column.
#[utoipa::path(post, path = "/api/templates", tag = "templates",
    request_body = CreateTemplate,
    responses(
        (status = 201, body = Template),
        (status = 409, description = "A live template has this name", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, or a template that does not compile", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub async fn create(app: &App, req: &Request) -> Result<Response<Body>, Problem> {
    let mut tx = app.begin(req, Access::Write).await?;
    let input: CreateTemplate = body::json(req)?;
    let new = NewTemplate::parse(input).map_err(Problem::invalid)?;
    let template = store::insert(&mut tx, &new).await?;
    events::emit(&mut tx, EventType::TemplateCreated, &template).await?;
    tx.commit().await?;
    response::created("/api/templates", template.id, &template)
}

/// Get one template.
#[utoipa::path(get, path = "/api/templates/{id}", tag = "templates",
    params(("id" = uuid::Uuid, Path)),
    responses(
        (status = 200, body = Template),
        (status = 404, body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub async fn get(app: &App, req: &Request) -> Result<Response<Body>, Problem> {
    let id = request::path_uuid(req, "id")?;
    let mut tx = app.begin(req, Access::Read).await?;
    let template = store::get(&mut tx, id)
        .await?
        .ok_or_else(|| Problem::not_found("template"))?;
    tx.commit().await?;
    response::ok(&template)
}

/// Change a template. Switching to `sms` needs `"subject": null`; switching to `email`
/// needs a subject.
#[utoipa::path(patch, path = "/api/templates/{id}", tag = "templates",
    params(("id" = uuid::Uuid, Path)),
    request_body = UpdateTemplate,
    responses(
        (status = 200, body = Template),
        (status = 404, body = ProblemDocument, content_type = "application/problem+json"),
        (status = 409, body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, or a template that does not compile", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub async fn update(app: &App, req: &Request) -> Result<Response<Body>, Problem> {
    let id = request::path_uuid(req, "id")?;
    let mut tx = app.begin(req, Access::Write).await?;
    let input: UpdateTemplate = body::json(req)?;
    let patch = TemplatePatch::parse(input).map_err(Problem::invalid)?;
    let current = store::get_for_update(&mut tx, id)
        .await?
        .ok_or_else(|| Problem::not_found("template"))?;
    let revision = patch.apply(&current).map_err(Problem::invalid)?;
    let template = store::update(&mut tx, id, &revision)
        .await?
        .ok_or_else(|| Problem::not_found("template"))?;
    events::emit(&mut tx, EventType::TemplateUpdated, &template).await?;
    tx.commit().await?;
    response::ok(&template)
}

/// Delete a template (soft: it disappears from the API; campaigns that sent it keep their
/// history). A template that an unfinished campaign (draft, scheduled, running or paused)
/// sends cannot be deleted: 409.
#[utoipa::path(delete, path = "/api/templates/{id}", tag = "templates",
    params(("id" = uuid::Uuid, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, body = ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "An unfinished campaign sends this template", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub async fn delete(app: &App, req: &Request) -> Result<Response<Body>, Problem> {
    let id = request::path_uuid(req, "id")?;
    let mut tx = app.begin(req, Access::Write).await?;
    // Locked first, so a campaign being created with this template either commits before
    // the count below or finds the template deleted.
    store::get_for_update(&mut tx, id)
        .await?
        .ok_or_else(|| Problem::not_found("template"))?;
    let campaigns = store::unfinished_campaigns(&mut tx, id).await?;
    if campaigns > 0 {
        return Err(Problem::conflict(format!(
            "the template is used by {campaigns} unfinished campaign(s); cancel or finish them first"
        )));
    }
    let template = store::soft_delete(&mut tx, id)
        .await?
        .ok_or_else(|| Problem::not_found("template"))?;
    events::emit(&mut tx, EventType::TemplateDeleted, &template).await?;
    tx.commit().await?;
    response::no_content()
}

/// Render a template for one of the tenant's contacts (`contactId`) or for sample values
/// (`variables`), exactly as a campaign would. Writes nothing; viewers may preview.
#[utoipa::path(post, path = "/api/templates/{id}/preview", tag = "templates",
    params(("id" = uuid::Uuid, Path)),
    request_body(content = PreviewRequest, example = json!({ "variables": { "contact": { "name": "Ada", "attributes": { "city": "London" } }, "campaign": { "name": "Spring" } } })),
    responses(
        (status = 200, body = Preview),
        (status = 404, description = "No such template, or no such contact", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "Invalid input, or the template does not render (too long, empty, out of fuel)", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub async fn preview(app: &App, req: &Request) -> Result<Response<Body>, Problem> {
    let id = request::path_uuid(req, "id")?;
    let mut tx = app.begin(req, Access::Read).await?;
    let input: PreviewRequest = body::json(req)?;
    let input = PreviewInput::parse(input).map_err(Problem::invalid)?;
    let template = store::get(&mut tx, id)
        .await?
        .ok_or_else(|| Problem::not_found("template"))?;
    let contact = match input.contact_id {
        Some(contact_id) => Some(
            contacts::store::get(&mut tx, contact_id)
                .await?
                .ok_or_else(|| Problem::not_found("contact"))?,
        ),
        None => None,
    };
    tx.commit().await?;

    let compiled = Compiled::new(
        template.channel,
        template.subject.as_deref(),
        &template.body,
    )
    .map_err(|errors| Problem::invalid(errors.iter().map(SyntaxError::field_error).collect()))?;
    let attributes = contact.as_ref().map(contacts::Contact::attributes_map);
    let contact_vars = match (contact.as_ref().zip(attributes.as_ref()), &input.contact) {
        (Some((contact, attributes)), _) => ContactVars::of(contact, attributes),
        (None, Some(sample)) => ContactVars {
            name: sample.name.as_deref(),
            phone: sample.phone.as_deref(),
            email: sample.email.as_deref(),
            attributes: sample.attributes.as_ref().and_then(|a| a.as_object()),
        },
        (None, None) => ContactVars::default(),
    };
    let ctx = RenderContext {
        contact: contact_vars,
        campaign: input
            .campaign_name
            .as_deref()
            .map(|name| CampaignVars { name: Some(name) }),
    };
    let rendered = compiled
        .render(&ctx)
        .map_err(|e| Problem::invalid(vec![e.field_error()]))?;
    response::ok(&Preview {
        length: rendered.body.chars().count(),
        subject: rendered.subject,
        body: rendered.body,
    })
}
