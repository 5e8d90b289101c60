//! Contacts: the people a tenant sends to.

pub mod import;
pub mod input;
pub mod json;
pub mod store;

use serde::Serialize;
use serde_json::{Map, Value};
use sqlx::Row;
use sqlx::postgres::PgRow;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::jsonb::{JsonbStr, JsonbText};

/// A contact as the API shows it and as its events carry it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Contact {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    /// E.164, e.g. `+14155552671`.
    pub phone: Option<String>,
    pub email: Option<String>,
    /// Free-form values for templates.
    // Kept as the stored JSON text: the API only passes it on, so it is never parsed into a
    // map to be written out again. Templates read it through `Contact::attributes_map`.
    #[schema(value_type = Object)]
    pub attributes: JsonbText,
    /// Whether the contact asked not to be messaged; campaigns skip it.
    pub opted_out: bool,
    #[serde(serialize_with = "crate::rfc3339::option::serialize")]
    pub opted_out_at: Option<OffsetDateTime>,
    #[serde(serialize_with = "crate::rfc3339::serialize")]
    pub created_at: OffsetDateTime,
    #[serde(serialize_with = "crate::rfc3339::serialize")]
    pub updated_at: OffsetDateTime,
    /// Set only in `contact_deleted` events.
    #[serde(
        serialize_with = "crate::rfc3339::option::serialize",
        skip_serializing_if = "Option::is_none"
    )]
    pub deleted_at: Option<OffsetDateTime>,
}

/// A contact's fields where they lie: in a row of a contact statement, or in a [`Contact`].
/// The list route writes a page's rows as JSON through it without building a `Contact` for
/// each (see `contacts::json`), and `Contact` decodes through it, so both read a row alike.
#[derive(Debug, Clone, Copy)]
pub struct ContactRef<'a> {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: &'a str,
    pub phone: Option<&'a str>,
    pub email: Option<&'a str>,
    pub attributes: JsonbStr<'a>,
    pub opted_out: bool,
    pub opted_out_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub deleted_at: Option<OffsetDateTime>,
}

impl<'r> ContactRef<'r> {
    /// Decodes by position, in the order of `store::columns!()` (see [`store::COLUMNS`]),
    /// sparing a lookup by name per column and row. A test holds the statement's column
    /// list to [`store::COLUMNS`];
    /// a row that carries more (a group's member) has them after these.
    pub fn from_row(row: &'r PgRow) -> Result<ContactRef<'r>, sqlx::Error> {
        // Every statement the tests run checks its columns here; release builds trust them.
        debug_assert!(
            row.columns()
                .iter()
                .map(sqlx::Column::name)
                .take(store::COLUMNS.len())
                .eq(store::COLUMNS),
            "a contact statement's columns do not start with store::COLUMNS"
        );
        Ok(ContactRef {
            id: get(row, 0)?,
            tenant_id: get(row, 1)?,
            name: get(row, 2)?,
            phone: get(row, 3)?,
            email: get(row, 4)?,
            attributes: get(row, 5)?,
            opted_out_at: get(row, 6)?,
            opted_out: get(row, 7)?,
            created_at: get(row, 8)?,
            updated_at: get(row, 9)?,
            deleted_at: get(row, 10)?,
        })
    }

    pub fn to_contact(self) -> Contact {
        Contact {
            id: self.id,
            tenant_id: self.tenant_id,
            name: self.name.to_owned(),
            phone: self.phone.map(str::to_owned),
            email: self.email.map(str::to_owned),
            attributes: self.attributes.to_jsonb_text(),
            opted_out: self.opted_out,
            opted_out_at: self.opted_out_at,
            created_at: self.created_at,
            updated_at: self.updated_at,
            deleted_at: self.deleted_at,
        }
    }
}

impl sqlx::FromRow<'_, PgRow> for Contact {
    fn from_row(row: &PgRow) -> Result<Contact, sqlx::Error> {
        ContactRef::from_row(row).map(ContactRef::to_contact)
    }
}

/// Column `index` of a contact row. Debug builds check its type against `T`, as
/// `Row::try_get` does, on every row the tests decode; release builds trust the statement
/// (its column list is [`store::COLUMNS`], its types the schema's): the check built and
/// compared lists of candidate types for each of a page's 561 values.
fn get<'r, T>(row: &'r PgRow, index: usize) -> Result<T, sqlx::Error>
where
    T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    if cfg!(debug_assertions) {
        row.try_get(index)
    } else {
        row.try_get_unchecked(index)
    }
}

impl Contact {
    pub fn as_contact_ref(&self) -> ContactRef<'_> {
        ContactRef {
            id: self.id,
            tenant_id: self.tenant_id,
            name: &self.name,
            phone: self.phone.as_deref(),
            email: self.email.as_deref(),
            attributes: self.attributes.as_jsonb_str(),
            opted_out: self.opted_out,
            opted_out_at: self.opted_out_at,
            created_at: self.created_at,
            updated_at: self.updated_at,
            deleted_at: self.deleted_at,
        }
    }

    /// `attributes` as a map, for rendering. The column only ever holds an object (see
    /// `Attributes::parse`); anything else reads as none.
    pub fn attributes_map(&self) -> Map<String, Value> {
        serde_json::from_str(self.attributes.get()).unwrap_or_default()
    }
}

crate::domain::page! {
    /// A page of contacts.
    ContactPage of Contact,
    total: " Live contacts matching the filters; given when paging by `offset`."
}
