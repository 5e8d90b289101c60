//! Contacts: the people a tenant sends to.

pub mod import;
pub mod input;
pub mod store;

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use sqlx::Row;
use sqlx::postgres::PgRow;
use time::OffsetDateTime;
use uuid::Uuid;

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
    ///
    /// Kept as the stored JSON text: the API only passes it on, and parsing every listed
    /// contact's object into a map only to write it out again was a tenth of a list
    /// request's CPU. Templates read it through [`Contact::attributes_map`].
    #[schema(value_type = Object)]
    pub attributes: Box<RawValue>,
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

/// Decoded by position, in the order of `store::columns!()` (see [`store::COLUMNS`]): a list
/// page decodes 11 columns of 51 rows, and looking each one up by name was a tenth of the
/// request's CPU. A test holds the statement's column list to [`store::COLUMNS`]; a row
/// that carries more (a group's member) has them after these.
impl sqlx::FromRow<'_, PgRow> for Contact {
    fn from_row(row: &PgRow) -> Result<Contact, sqlx::Error> {
        // Every statement the tests run checks its columns here; release builds trust them.
        // A row may go on after them: a group's member (`#[sqlx(flatten)]`) adds `added_at`.
        debug_assert!(
            row.columns()
                .iter()
                .map(sqlx::Column::name)
                .take(store::COLUMNS.len())
                .eq(store::COLUMNS),
            "a contact statement's columns do not start with store::COLUMNS"
        );
        Ok(Contact {
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
    /// `attributes` as a map, for rendering. The column only ever holds an object (see
    /// `Attributes::parse`); anything else reads as none.
    pub fn attributes_map(&self) -> Map<String, Value> {
        serde_json::from_str(self.attributes.get()).unwrap_or_default()
    }
}

/// A page of contacts.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContactPage {
    pub items: Vec<Contact>,
    /// Live contacts matching the filters; given when paging by `offset`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<i64>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}
