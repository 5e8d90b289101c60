//! Contact input as sent, and as parsed into domain types.

use serde::Deserialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::domain::nullable;
use crate::domain::{Attributes, Email, FieldError, FieldErrors, Name, Phone};

/// `POST /api/contacts`. A contact needs a phone, an email, or both.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateContact {
    pub name: String,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub attributes: Option<Map<String, Value>>,
    #[serde(default)]
    pub opted_out: Option<bool>,
}

/// `PATCH /api/contacts/{id}`: absent fields stay as they are; `null` clears `phone` or
/// `email`; `attributes` replaces the whole object.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateContact {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub phone: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub email: Option<Option<String>>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub attributes: Option<Map<String, Value>>,
    #[serde(default)]
    pub opted_out: Option<bool>,
}

/// A contact ready to insert.
#[derive(Debug, Clone)]
pub struct NewContact {
    pub id: Uuid,
    pub name: Name,
    pub phone: Option<Phone>,
    pub email: Option<Email>,
    pub attributes: Attributes,
    pub opted_out: bool,
}

/// A validated change to a contact.
#[derive(Debug, Default)]
pub struct ContactPatch {
    pub name: Option<Name>,
    pub phone: Option<Option<Phone>>,
    pub email: Option<Option<Email>>,
    pub attributes: Option<Attributes>,
    pub opted_out: Option<bool>,
}

impl NewContact {
    pub fn parse(input: CreateContact) -> Result<NewContact, Vec<FieldError>> {
        let mut errors = FieldErrors::default();
        let name = errors.check("/name", Name::parse(&input.name));
        let phone = input
            .phone
            .as_deref()
            .map(|p| errors.check("/phone", Phone::parse(p)));
        let email = input
            .email
            .as_deref()
            .map(|e| errors.check("/email", Email::parse(e)));
        let attributes = errors.check(
            "/attributes",
            Attributes::parse(input.attributes.unwrap_or_default()),
        );
        if input.phone.is_none() && input.email.is_none() {
            errors.push("", "a contact needs a phone or an email");
        }
        errors.finish(|| NewContact {
            id: Uuid::now_v7(),
            name: name.expect("checked"),
            phone: phone.map(|p| p.expect("checked")),
            email: email.map(|e| e.expect("checked")),
            attributes: attributes.expect("checked"),
            opted_out: input.opted_out.unwrap_or(false),
        })
    }
}

impl ContactPatch {
    pub fn parse(input: UpdateContact) -> Result<ContactPatch, Vec<FieldError>> {
        let mut errors = FieldErrors::default();
        let empty = input.name.is_none()
            && input.phone.is_none()
            && input.email.is_none()
            && input.attributes.is_none()
            && input.opted_out.is_none();
        if empty {
            errors.push("", "the patch changes nothing");
        }
        let name = input.name.map(|n| errors.check("/name", Name::parse(&n)));
        let phone = input
            .phone
            .map(|p| p.map(|p| errors.check("/phone", Phone::parse(&p))));
        let email = input
            .email
            .map(|e| e.map(|e| errors.check("/email", Email::parse(&e))));
        let attributes = input
            .attributes
            .map(|a| errors.check("/attributes", Attributes::parse(a)));
        errors.finish(|| ContactPatch {
            name: name.map(|n| n.expect("checked")),
            phone: phone.map(|p| p.map(|p| p.expect("checked"))),
            email: email.map(|e| e.map(|e| e.expect("checked"))),
            attributes: attributes.map(|a| a.expect("checked")),
            opted_out: input.opted_out,
        })
    }
}
