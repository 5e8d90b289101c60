//! Template input as sent, and as parsed: a template that parses is one that compiles.

use serde::Deserialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::render::{Compiled, SUBJECT_MAX_CHARS, SyntaxError};
use super::{Channel, Template};
use crate::domain::nullable;
use crate::domain::{Attributes, FieldError, FieldErrors, Invalid, Name};

/// The longest template body, in characters.
pub const BODY_MAX_CHARS: usize = 20_000;

/// `POST /api/templates`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateTemplate {
    /// 1 to 200 characters, unique among the tenant's templates (case-insensitive).
    pub name: String,
    /// `sms` (the default) or `email`.
    #[serde(default)]
    #[schema(value_type = Option<super::Channel>)]
    pub channel: Option<String>,
    /// Email templates only, and required there: the subject line, itself a template.
    #[serde(default)]
    pub subject: Option<String>,
    /// The message: a minijinja template over `contact` and `campaign`, up to 20,000
    /// characters, e.g. `Hi {{ contact.name }}, see you in
    /// {{ contact.attributes.city | default("town") }}!`.
    pub body: String,
}

/// `PATCH /api/templates/{id}`: absent fields stay as they are. `subject: null` removes
/// the subject, which switching an email template to SMS requires.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateTemplate {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<super::Channel>)]
    pub channel: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub subject: Option<Option<String>>,
    #[serde(default)]
    pub body: Option<String>,
}

/// A template's content once checked: what the database stores.
#[derive(Debug, Clone)]
pub struct Revision {
    pub name: String,
    pub channel: Channel,
    pub subject: Option<String>,
    pub body: String,
    pub variables: Vec<String>,
}

/// A template ready to insert.
#[derive(Debug, Clone)]
pub struct NewTemplate {
    pub id: Uuid,
    pub revision: Revision,
}

/// A validated change, applied to the current template by [`TemplatePatch::apply`].
#[derive(Debug, Default)]
pub struct TemplatePatch {
    pub name: Option<Name>,
    pub channel: Option<Channel>,
    pub subject: Option<Option<String>>,
    pub body: Option<String>,
}

/// A template source: not blank, at most `max` characters, no control characters but
/// line breaks and tabs (`allow_breaks`).
fn source(input: &str, max: usize, allow_breaks: bool) -> Result<String, Invalid> {
    if input.trim().is_empty() {
        return Err(Invalid::new("must not be empty"));
    }
    if input.chars().count() > max {
        return Err(Invalid::new(format!("must be at most {max} characters")));
    }
    let allowed = |c: char| allow_breaks && matches!(c, '\n' | '\r' | '\t');
    if input.chars().any(|c| c.is_control() && !allowed(c)) {
        return Err(Invalid::new(match allow_breaks {
            true => "must not contain control characters other than line breaks and tabs",
            false => "must be one line without control characters",
        }));
    }
    Ok(input.to_owned())
}

fn body(input: &str) -> Result<String, Invalid> {
    source(input, BODY_MAX_CHARS, true)
}

fn subject(input: &str) -> Result<String, Invalid> {
    source(input, SUBJECT_MAX_CHARS, false)
}

/// Checks what only the whole template can tell (a subject exactly for email), compiles
/// it and extracts its variables.
fn revise(
    name: String,
    channel: Channel,
    subject: Option<String>,
    body: String,
) -> Result<Revision, Vec<FieldError>> {
    match (channel, &subject) {
        (Channel::Sms, Some(_)) => {
            return Err(vec![FieldError::new(
                "/subject",
                "only email templates have a subject (send \"subject\": null to remove it)",
            )]);
        }
        (Channel::Email, None) => {
            return Err(vec![FieldError::new(
                "/subject",
                "an email template needs a subject",
            )]);
        }
        _ => {}
    }
    let compiled = Compiled::new(channel, subject.as_deref(), &body).map_err(|errors| {
        errors
            .iter()
            .map(SyntaxError::field_error)
            .collect::<Vec<_>>()
    })?;
    Ok(Revision {
        name,
        channel,
        subject,
        body,
        variables: compiled.variables().to_vec(),
    })
}

impl NewTemplate {
    pub fn parse(input: CreateTemplate) -> Result<NewTemplate, Vec<FieldError>> {
        let mut errors = FieldErrors::default();
        let name = errors.check("/name", Name::parse(&input.name));
        let channel = match input.channel.as_deref() {
            Some(c) => errors.check("/channel", Channel::parse(c)),
            None => Some(Channel::Sms),
        };
        let subject = input
            .subject
            .as_deref()
            .map(|s| errors.check("/subject", subject(s)));
        let body = errors.check("/body", body(&input.body));
        errors.into_result()?;
        let (Some(name), Some(channel), Some(body)) = (name, channel, body) else {
            unreachable!("errors were checked");
        };
        let subject = subject.map(|s| s.expect("errors were checked"));
        Ok(NewTemplate {
            id: Uuid::now_v7(),
            revision: revise(name.into_inner(), channel, subject, body)?,
        })
    }
}

impl TemplatePatch {
    pub fn parse(input: UpdateTemplate) -> Result<TemplatePatch, Vec<FieldError>> {
        let mut errors = FieldErrors::default();
        if input.name.is_none()
            && input.channel.is_none()
            && input.subject.is_none()
            && input.body.is_none()
        {
            errors.push("", "the patch changes nothing");
        }
        let name = input.name.map(|n| errors.check("/name", Name::parse(&n)));
        let channel = input
            .channel
            .map(|c| errors.check("/channel", Channel::parse(&c)));
        let subject_ = input
            .subject
            .map(|s| s.map(|s| errors.check("/subject", subject(&s))));
        let body = input.body.map(|b| errors.check("/body", body(&b)));
        errors.into_result()?;
        Ok(TemplatePatch {
            name: name.flatten(),
            channel: channel.flatten(),
            subject: subject_.map(|s| s.flatten()),
            body: body.flatten(),
        })
    }

    /// The template as it will be after this change.
    pub fn apply(self, current: &Template) -> Result<Revision, Vec<FieldError>> {
        let recompile = self.channel.is_some() || self.subject.is_some() || self.body.is_some();
        let name = self
            .name
            .map_or_else(|| current.name.clone(), Name::into_inner);
        let channel = self.channel.unwrap_or(current.channel);
        let subject = self.subject.unwrap_or_else(|| current.subject.clone());
        let body = self.body.unwrap_or_else(|| current.body.clone());
        if !recompile {
            return Ok(Revision {
                name,
                channel,
                subject,
                body,
                variables: current.variables.clone(),
            });
        }
        revise(name, channel, subject, body)
    }
}

/// `POST /api/templates/{id}/preview`: render for one of the tenant's contacts, or for
/// sample values.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PreviewRequest {
    /// A contact of the tenant to render for.
    #[serde(default)]
    pub contact_id: Option<Uuid>,
    /// Sample values: `contact` (instead of `contactId`) and `campaign`.
    #[serde(default)]
    pub variables: Option<SampleVariables>,
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SampleVariables {
    #[serde(default)]
    pub contact: Option<SampleContact>,
    #[serde(default)]
    pub campaign: Option<SampleCampaign>,
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SampleContact {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub attributes: Option<Map<String, Value>>,
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SampleCampaign {
    #[serde(default)]
    pub name: Option<String>,
}

/// A checked preview request.
#[derive(Debug)]
pub struct PreviewInput {
    pub contact_id: Option<Uuid>,
    pub contact: Option<Sample>,
    pub campaign_name: Option<String>,
}

/// Sample contact values, bounded like a contact's.
#[derive(Debug, Default)]
pub struct Sample {
    pub name: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    /// Always a JSON object.
    pub attributes: Option<Value>,
}

fn bounded(input: Option<String>, max: usize) -> Result<Option<String>, Invalid> {
    match input {
        Some(s) if s.chars().count() > max => {
            Err(Invalid::new(format!("must be at most {max} characters")))
        }
        other => Ok(other),
    }
}

impl PreviewInput {
    pub fn parse(input: PreviewRequest) -> Result<PreviewInput, Vec<FieldError>> {
        let mut errors = FieldErrors::default();
        let SampleVariables { contact, campaign } = input.variables.unwrap_or_default();
        match (&input.contact_id, &contact) {
            (None, None) => errors.push(
                "",
                "give a `contactId`, or sample values as `variables.contact`",
            ),
            (Some(_), Some(_)) => errors.push(
                "/variables/contact",
                "give either `contactId` or `variables.contact`, not both",
            ),
            _ => {}
        }
        let contact = contact.map(|c| Sample {
            name: errors
                .check("/variables/contact/name", bounded(c.name, 200))
                .flatten(),
            phone: errors
                .check("/variables/contact/phone", bounded(c.phone, 32))
                .flatten(),
            email: errors
                .check("/variables/contact/email", bounded(c.email, 254))
                .flatten(),
            attributes: c
                .attributes
                .and_then(|a| errors.check("/variables/contact/attributes", Attributes::parse(a)))
                .map(Attributes::into_value),
        });
        let campaign_name = campaign
            .and_then(|c| errors.check("/variables/campaign/name", bounded(c.name, 200)))
            .flatten();
        errors.into_result()?;
        Ok(PreviewInput {
            contact_id: input.contact_id,
            contact,
            campaign_name,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(value: serde_json::Value) -> Result<NewTemplate, Vec<FieldError>> {
        NewTemplate::parse(serde_json::from_value(value).unwrap())
    }

    #[test]
    fn defaults_to_sms_and_extracts_variables() {
        let t =
            create(serde_json::json!({ "name": " Hi ", "body": "Hi {{ contact.name }}" })).unwrap();
        assert_eq!(t.revision.name, "Hi");
        assert_eq!(t.revision.channel, Channel::Sms);
        assert_eq!(t.revision.variables, ["contact.name"]);
    }

    #[test]
    fn subject_exactly_for_email() {
        let err =
            create(serde_json::json!({ "name": "a", "subject": "s", "body": "b" })).unwrap_err();
        assert_eq!(err[0].pointer, "/subject");
        let err = create(serde_json::json!({ "name": "a", "channel": "email", "body": "b" }))
            .unwrap_err();
        assert_eq!(err[0].pointer, "/subject");
        let err = create(
            serde_json::json!({ "name": "a", "channel": "email", "subject": "a\nb", "body": "b" }),
        )
        .unwrap_err();
        assert_eq!(err[0].pointer, "/subject");
        create(serde_json::json!({ "name": "a", "channel": "email", "subject": "s", "body": "b" }))
            .unwrap();
    }

    #[test]
    fn collects_field_errors() {
        let err =
            create(serde_json::json!({ "name": "", "channel": "fax", "body": " " })).unwrap_err();
        let pointers: Vec<_> = err.iter().map(|e| e.pointer.as_str()).collect();
        assert_eq!(pointers, ["/name", "/channel", "/body"]);
        let err =
            create(serde_json::json!({ "name": "a", "body": "x".repeat(20_001) })).unwrap_err();
        assert_eq!(err[0].pointer, "/body");
        let err = create(serde_json::json!({ "name": "a", "body": "a\u{0}b" })).unwrap_err();
        assert_eq!(err[0].pointer, "/body");
    }
}
