//! Rendering templates for contacts: the one entry point the API's preview and the campaign
//! engine share.
//!
//! Compile once, render many: [`Compiled::new`] checks and compiles a template's subject
//! and body (about as costly as a few renders); [`Compiled::render`] then renders them for
//! one recipient's [`RenderContext`]. [`render`] does both for a single body.
//!
//! ```
//! use herald::templates::Channel;
//! use herald::templates::render::{Compiled, ContactVars, RenderContext};
//!
//! let template = Compiled::new(
//!     Channel::Sms,
//!     None,
//!     "Hi {{ contact.name }}, see you in {{ contact.attributes.city | default('town') }}!",
//! )
//! .unwrap();
//! let ctx = RenderContext {
//!     contact: ContactVars { name: Some("Ada"), ..ContactVars::default() },
//!     campaign: None,
//! };
//! assert_eq!(template.render(&ctx).unwrap().body, "Hi Ada, see you in town!");
//! ```
//!
//! Limits: an SMS body renders to at most [`SMS_MAX_CHARS`] characters (ten 160-character
//! segments), an email body to at most [`EMAIL_MAX_CHARS`] (what a stored message may
//! hold), a subject to at most [`SUBJECT_MAX_CHARS`] (RFC 5322's line length). Only email
//! bodies are HTML-escaped. An empty (or blank) body is an error: there is nothing to send.

use std::collections::BTreeSet;
use std::io;

use minijinja::{Environment, ErrorKind, Value};
use serde::Serialize;
use serde_json::Map;

use super::sandbox::{BASE, EMAIL_BODY, FUEL};
use super::{Channel, check};
use crate::contacts::Contact;
use crate::domain::FieldError;

pub const SMS_MAX_CHARS: usize = 1_600;
pub const EMAIL_MAX_CHARS: usize = 20_000;
pub const SUBJECT_MAX_CHARS: usize = 998;

const SUBJECT: &str = "subject.txt";
const SMS_BODY: &str = "body.txt";

/// Which source of a template something concerns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    Subject,
    Body,
}

impl Part {
    /// The JSON Pointer of the part in a template's request body.
    pub fn pointer(self) -> &'static str {
        match self {
            Part::Subject => "/subject",
            Part::Body => "/body",
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Part::Subject => "subject",
            Part::Body => "body",
        }
    }
}

/// A source that does not compile, or uses what templates may not: where and why.
/// Lines and columns count from 1; columns count characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct SyntaxError {
    pub part: Part,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl SyntaxError {
    pub(crate) fn from_minijinja(part: Part, source: &str, err: &minijinja::Error) -> SyntaxError {
        let (line, column) = match err.range() {
            Some(range) => line_column(source, range.start),
            None => (err.line().unwrap_or(1), 1),
        };
        SyntaxError {
            part,
            line,
            column,
            message: describe(err),
        }
    }

    pub fn field_error(&self) -> FieldError {
        FieldError::new(self.part.pointer(), self.to_string())
    }
}

/// Why a template could not be rendered for a recipient.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error(transparent)]
    Syntax(#[from] SyntaxError),
    #[error("{}{message}", line.map(|l| format!("line {l}: ")).unwrap_or_default())]
    Failed {
        part: Part,
        line: Option<usize>,
        message: String,
    },
    #[error("the rendered text is longer than {limit} characters")]
    TooLong { part: Part, limit: usize },
    #[error("the rendered text is empty")]
    Empty { part: Part },
}

impl RenderError {
    pub fn part(&self) -> Part {
        match self {
            RenderError::Syntax(e) => e.part,
            RenderError::Failed { part, .. }
            | RenderError::TooLong { part, .. }
            | RenderError::Empty { part } => *part,
        }
    }

    pub fn field_error(&self) -> FieldError {
        FieldError::new(self.part().pointer(), self.to_string())
    }
}

/// What a template can use: `contact` and, in campaigns, `campaign`. Absent values are
/// undefined in the template (so `default(...)` applies), never "none".
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct RenderContext<'a> {
    pub contact: ContactVars<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub campaign: Option<CampaignVars<'a>>,
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct ContactVars<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attributes: Option<&'a Map<String, serde_json::Value>>,
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct CampaignVars<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a str>,
}

impl<'a> RenderContext<'a> {
    /// Adds the campaign the message belongs to.
    pub fn in_campaign(self, name: &'a str) -> RenderContext<'a> {
        RenderContext {
            campaign: Some(CampaignVars { name: Some(name) }),
            ..self
        }
    }
}

impl<'a> ContactVars<'a> {
    /// `contact`'s fields, with its attributes parsed once by the caller
    /// ([`Contact::attributes_map`]).
    pub fn of(contact: &'a Contact, attributes: &'a Map<String, serde_json::Value>) -> Self {
        ContactVars {
            name: Some(&contact.name),
            phone: contact.phone.as_deref(),
            email: contact.email.as_deref(),
            attributes: Some(attributes),
        }
    }
}

/// One recipient's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// Email only; on one line (line breaks from variables become spaces).
    pub subject: Option<String>,
    pub body: String,
}

/// A template checked and compiled, ready to render for any number of recipients.
pub struct Compiled {
    env: Environment<'static>,
    channel: Channel,
    has_subject: bool,
    variables: Vec<String>,
}

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compiled")
            .field("channel", &self.channel)
            .field("has_subject", &self.has_subject)
            .field("variables", &self.variables)
            .finish_non_exhaustive()
    }
}

impl Compiled {
    /// Checks and compiles a template; every part's first error is reported.
    pub fn new(
        channel: Channel,
        subject: Option<&str>,
        body: &str,
    ) -> Result<Compiled, Vec<SyntaxError>> {
        let mut env = BASE.clone();
        let mut variables = BTreeSet::new();
        let mut errors = Vec::new();
        let parts = [
            subject.map(|s| (Part::Subject, SUBJECT, s)),
            Some((Part::Body, body_name(channel), body)),
        ];
        for (part, name, source) in parts.into_iter().flatten() {
            let compiled = check::analyze(source, part).and_then(|vars| {
                env.add_template_owned(name, source.to_owned())
                    .map(|()| vars)
                    .map_err(|e| SyntaxError::from_minijinja(part, source, &e))
            });
            match compiled {
                Ok(vars) => variables.extend(vars),
                Err(e) => errors.push(e),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Compiled {
            env,
            channel,
            has_subject: subject.is_some(),
            variables: variables.into_iter().collect(),
        })
    }

    pub fn channel(&self) -> Channel {
        self.channel
    }

    /// The variables the subject and body use, sorted and distinct: dotted paths from
    /// `contact` or `campaign`, e.g. `contact.attributes.city`; keys that are not
    /// identifiers in brackets, `contact.attributes["first name"]`; list items by index,
    /// `contact.attributes.tags[0]`. A lookup with a computed key stops before it.
    pub fn variables(&self) -> &[String] {
        &self.variables
    }

    pub fn render(&self, ctx: &RenderContext<'_>) -> Result<Rendered, RenderError> {
        let root = Value::from_serialize(ctx);
        let subject = match self.has_subject {
            true => Some(self.render_part(Part::Subject, root.clone())?),
            false => None,
        };
        let body = self.render_part(Part::Body, root)?;
        Ok(Rendered { subject, body })
    }

    fn render_part(&self, part: Part, root: Value) -> Result<String, RenderError> {
        let (name, limit) = match part {
            Part::Subject => (SUBJECT, SUBJECT_MAX_CHARS),
            Part::Body => (body_name(self.channel), body_limit(self.channel)),
        };
        let failed = |err: &minijinja::Error| RenderError::Failed {
            part,
            line: err.line(),
            message: describe(err),
        };
        let template = self.env.get_template(name).map_err(|e| failed(&e))?;
        let mut out = Capped::new(limit);
        if let Err(err) = template.render_captured_to(root, &mut out) {
            return Err(match out.exceeded {
                true => RenderError::TooLong { part, limit },
                false => failed(&err),
            });
        }
        // Only whole `str`s were written, so the bytes are UTF-8.
        let text = String::from_utf8(out.buf)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
        match part {
            Part::Subject => Ok(one_line(&text)),
            Part::Body if text.trim().is_empty() => Err(RenderError::Empty { part }),
            Part::Body => Ok(text),
        }
    }
}

/// Checks, compiles and renders one body. Rendering many recipients should compile once
/// with [`Compiled::new`] instead.
pub fn render(
    channel: Channel,
    body: &str,
    ctx: &RenderContext<'_>,
) -> Result<String, RenderError> {
    let compiled = Compiled::new(channel, None, body)
        .map_err(|mut errors| RenderError::Syntax(errors.remove(0)))?;
    Ok(compiled.render(ctx)?.body)
}

fn body_name(channel: Channel) -> &'static str {
    match channel {
        Channel::Sms => SMS_BODY,
        Channel::Email => EMAIL_BODY,
    }
}

fn body_limit(channel: Channel) -> usize {
    match channel {
        Channel::Sms => SMS_MAX_CHARS,
        Channel::Email => EMAIL_MAX_CHARS,
    }
}

fn one_line(text: &str) -> String {
    let line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    line.trim().to_owned()
}

fn describe(err: &minijinja::Error) -> String {
    match (err.kind(), err.detail()) {
        (ErrorKind::OutOfFuel, _) => {
            format!("the template does too much work (more than {FUEL} steps)")
        }
        (kind, Some(detail)) => format!("{kind}: {detail}"),
        (kind, None) => kind.to_string(),
    }
}

/// 1-based line and character column of a byte offset.
fn line_column(source: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(source.len());
    while !source.is_char_boundary(end) {
        end -= 1;
    }
    let before = &source[..end];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, column)
}

/// Collects output up to a number of characters, then fails the render.
struct Capped {
    buf: Vec<u8>,
    chars: usize,
    limit: usize,
    exceeded: bool,
}

impl Capped {
    fn new(limit: usize) -> Capped {
        Capped {
            buf: Vec::with_capacity(256),
            chars: 0,
            limit,
            exceeded: false,
        }
    }
}

impl io::Write for Capped {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        // Characters are the bytes that do not continue a UTF-8 sequence.
        let chars = bytes.iter().filter(|&&b| (b as i8) >= -0x40).count();
        if self.chars + chars > self.limit {
            self.exceeded = true;
            return Err(io::Error::other("the output cap was reached"));
        }
        self.chars += chars;
        self.buf.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn attributes(value: serde_json::Value) -> Map<String, serde_json::Value> {
        value.as_object().unwrap().clone()
    }

    fn sms(body: &str) -> Compiled {
        Compiled::new(Channel::Sms, None, body).unwrap()
    }

    fn ada(attrs: &Map<String, serde_json::Value>) -> RenderContext<'_> {
        RenderContext {
            contact: ContactVars {
                name: Some("Ada <Lovelace>"),
                phone: Some("+14155552671"),
                email: None,
                attributes: Some(attrs),
            },
            campaign: None,
        }
    }

    #[test]
    fn renders_contact_and_campaign_values() {
        let attrs = attributes(json!({ "city": "London", "tags": ["vip"], "note": null }));
        let t = sms(
            "Hi {{ contact.name }} from {{ contact.attributes.city }}{% if 'vip' in contact.attributes.tags %} (VIP){% endif %}\
             {{ contact.attributes.note }}{{ contact.email }}{{ contact.attributes.missing.deeper }} \
             re {{ campaign.name | default('-') }}",
        );
        assert_eq!(
            t.render(&ada(&attrs)).unwrap().body,
            "Hi Ada <Lovelace> from London (VIP) re -"
        );
        assert_eq!(
            t.render(&ada(&attrs).in_campaign("Spring")).unwrap().body,
            "Hi Ada <Lovelace> from London (VIP) re Spring"
        );
    }

    #[test]
    fn only_email_bodies_escape() {
        let attrs = Map::new();
        let email = Compiled::new(
            Channel::Email,
            Some("For {{ contact.name }}\n!"),
            "<p>{{ contact.name }}</p>",
        )
        .unwrap();
        let out = email.render(&ada(&attrs)).unwrap();
        assert_eq!(out.body, "<p>Ada &lt;Lovelace&gt;</p>");
        assert_eq!(out.subject.as_deref(), Some("For Ada <Lovelace> !"));
        assert_eq!(
            sms("{{ contact.name }}").render(&ada(&attrs)).unwrap().body,
            "Ada <Lovelace>"
        );
    }

    #[test]
    fn output_is_capped() {
        let attrs = Map::new();
        let t = sms("{% for i in range(161) %}0123456789{% endfor %}");
        assert_eq!(
            t.render(&ada(&attrs)).unwrap_err(),
            RenderError::TooLong {
                part: Part::Body,
                limit: SMS_MAX_CHARS
            }
        );
        let exact = sms("{% for i in range(160) %}0123456789{% endfor %}");
        assert_eq!(
            exact.render(&ada(&attrs)).unwrap().body.chars().count(),
            1600
        );
        // Characters, not bytes.
        let wide = sms("{% for i in range(400) %}ñßé€{% endfor %}");
        assert_eq!(
            wide.render(&ada(&attrs)).unwrap().body.chars().count(),
            1600
        );
    }

    #[test]
    fn runaway_loops_run_out_of_fuel() {
        let attrs = Map::new();
        let t = sms(
            "{% for a in range(1000) %}{% for b in range(1000) %}{% for c in range(1000) %}\
             {% endfor %}{% endfor %}{% endfor %}x",
        );
        let err = t.render(&ada(&attrs)).unwrap_err();
        assert!(err.to_string().contains("too much work"), "{err}");
        let err = sms("{% for a in range(100000) %}x{% endfor %}")
            .render(&ada(&attrs))
            .unwrap_err();
        assert!(
            err.to_string().contains("range has too many elements"),
            "{err}"
        );
    }

    #[test]
    fn empty_bodies_are_errors() {
        let attrs = Map::new();
        assert_eq!(
            sms("{{ contact.attributes.nothing }}  ")
                .render(&ada(&attrs))
                .unwrap_err(),
            RenderError::Empty { part: Part::Body }
        );
    }

    #[test]
    fn compile_errors_name_part_line_and_column() {
        let errors =
            Compiled::new(Channel::Email, Some("{{ contact.name"), "ok\n{% if %}").unwrap_err();
        assert_eq!(errors.len(), 2);
        assert_eq!(errors[0].part, Part::Subject);
        assert_eq!(errors[1].part, Part::Body);
        assert_eq!(errors[1].line, 2);
        assert!(
            errors[1]
                .field_error()
                .detail
                .starts_with("line 2, column ")
        );
    }

    #[test]
    fn variables_cover_subject_and_body() {
        let t = Compiled::new(
            Channel::Email,
            Some("{{ campaign.name }}"),
            "{{ contact.name }} {{ contact.attributes.city }}",
        )
        .unwrap();
        assert_eq!(
            t.variables(),
            ["campaign.name", "contact.attributes.city", "contact.name"]
        );
    }

    /// `cargo test -p herald --release -- --ignored --nocapture render_cost`
    #[test]
    #[ignore = "a measurement, not a test"]
    fn render_cost() {
        let attrs = attributes(json!({ "city": "London", "plan": "gold", "points": 1200 }));
        let contact = ada(&attrs).in_campaign("Spring sale");
        let body = "Hi {{ contact.name }}! {{ campaign.name }}: {{ contact.attributes.plan | upper }} members in \
                    {{ contact.attributes.city | default('your city') }} get {{ contact.attributes.points | int + 100 }} \
                    points. Reply STOP to opt out.";
        let n = 100_000;
        let started = std::time::Instant::now();
        for _ in 0..1_000 {
            std::hint::black_box(Compiled::new(Channel::Sms, None, body).unwrap());
        }
        let compile = started.elapsed() / 1_000;
        let t = sms(body);
        let started = std::time::Instant::now();
        for _ in 0..n {
            std::hint::black_box(t.render(&contact).unwrap());
        }
        let per = started.elapsed() / n;
        println!("compile: {compile:?}; render: {per:?} per message");
        println!("{}", t.render(&contact).unwrap().body);

        // Worst cases: a template that burns all its fuel, and one that spends it on the
        // costliest filter over the largest attribute a contact may hold.
        let blob = attributes(json!({ "blob": "ab ".repeat(5_000) }));
        let worst = [
            "{% for a in range(1000) %}{% for b in range(1000) %}{% endfor %}{% endfor %}",
            "{% for a in range(1000) %}{% for b in range(1000) %}\
             {% if contact.attributes.blob | replace('a', 'xy') | upper | length > 1 %}{% endif %}\
             {% endfor %}{% endfor %}",
        ];
        for body in worst {
            let t = sms(body);
            let started = std::time::Instant::now();
            let err = t.render(&ada(&blob)).unwrap_err();
            println!("worst case: {:?} ({err})", started.elapsed());
        }
    }
}
