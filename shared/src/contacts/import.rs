//! Bulk import: parse a CSV or JSON array into rows, validate each, and plan which to
//! insert. A bad row never sinks the others; every row that is not imported is reported
//! with its number (data rows count from 1, a CSV header is not a row) and the reason.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::{Map, Value};

use super::input::{CreateContact, NewContact};
use crate::db::StoreError;
use crate::domain::FieldError;

pub const MAX_ROWS: usize = 10_000;

/// What an import did.
#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImportReport {
    /// Rows in the request.
    pub received: usize,
    /// Contacts created.
    pub imported: usize,
    /// Rows refused, each with every reason.
    pub invalid: Vec<InvalidRow>,
    /// Rows that repeat an earlier row or an existing live contact; not imported again.
    pub duplicates: Vec<DuplicateRow>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct InvalidRow {
    pub row: usize,
    pub errors: Vec<FieldError>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DuplicateRow {
    pub row: usize,
    pub reason: String,
    /// The earlier row of the same request it repeats, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duplicate_of_row: Option<usize>,
}

/// The rows to insert, with their row numbers, and the report so far.
pub struct Plan {
    pub rows: Vec<(usize, NewContact)>,
    pub report: ImportReport,
}

/// A JSON array of contacts (decoded by the caller), each shaped like `POST /api/contacts`. Unlike a CSV file, a
/// JSON document has a shape of its own: a row that is not a contact object (wrong types,
/// unknown or missing fields) makes the whole import 422, every such row named by its
/// pointer (`/0` is row 1), and nothing is imported. Rows of the right shape with invalid
/// values (a bad phone) are reported row by row.
pub fn parse_json(
    items: Vec<Value>,
) -> Result<Vec<Result<CreateContact, Vec<FieldError>>>, StoreError> {
    check_count(items.len())?;
    let mut rows = Vec::with_capacity(items.len());
    let mut malformed = Vec::new();
    for (index, item) in items.into_iter().enumerate() {
        match serde_json::from_value::<CreateContact>(item) {
            Ok(row) => rows.push(Ok(row)),
            Err(e) if malformed.len() < MAX_SHAPE_ERRORS => {
                malformed.push(FieldError::new(format!("/{index}"), e.to_string()))
            }
            Err(_) => {}
        }
    }
    if malformed.is_empty() {
        Ok(rows)
    } else {
        Err(StoreError::invalid(malformed))
    }
}

/// Misshapen JSON rows listed in one 422; the rest are left out of the answer.
const MAX_SHAPE_ERRORS: usize = 100;

/// CSV with a header row. `name`, `phone`, `email` and `optedOut` are the contact's own
/// columns; every other column becomes an attribute (empty cells are left out).
pub fn parse_csv(bytes: &[u8]) -> Result<Vec<Result<CreateContact, Vec<FieldError>>>, StoreError> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .trim(csv::Trim::All)
        .from_reader(bytes);
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| StoreError::malformed(format!("the CSV header cannot be read: {e}")))?
        .iter()
        .map(|h| h.to_owned())
        .collect();
    if !headers.iter().any(|h| h.eq_ignore_ascii_case("name")) {
        return Err(StoreError::field(
            "",
            "the CSV header must have a `name` column",
        ));
    }
    let mut rows = Vec::new();
    for record in reader.records() {
        if rows.len() == MAX_ROWS {
            check_count(MAX_ROWS + 1)?;
        }
        rows.push(match record {
            Ok(record) => csv_row(&headers, &record),
            Err(e) => Err(vec![FieldError::new(
                "",
                format!("unreadable CSV row: {e}"),
            )]),
        });
    }
    Ok(rows)
}

fn csv_row(
    headers: &[String],
    record: &csv::StringRecord,
) -> Result<CreateContact, Vec<FieldError>> {
    let mut contact = CreateContact {
        name: String::new(),
        phone: None,
        email: None,
        attributes: None,
        opted_out: None,
    };
    let mut attributes = Map::new();
    for (header, value) in headers.iter().zip(record.iter()) {
        if value.is_empty() {
            continue;
        }
        match header.to_ascii_lowercase().as_str() {
            "name" => contact.name = value.to_owned(),
            "phone" => contact.phone = Some(value.to_owned()),
            "email" => contact.email = Some(value.to_owned()),
            "optedout" | "opted_out" => {
                contact.opted_out = Some(match value.to_ascii_lowercase().as_str() {
                    "true" | "yes" | "1" => true,
                    "false" | "no" | "0" => false,
                    _ => return Err(vec![FieldError::new("/optedOut", "must be true or false")]),
                })
            }
            _ => {
                attributes.insert(header.clone(), Value::String(value.to_owned()));
            }
        }
    }
    contact.attributes = Some(attributes);
    Ok(contact)
}

fn check_count(n: usize) -> Result<(), StoreError> {
    if n > MAX_ROWS {
        return Err(StoreError::field(
            "",
            format!("an import holds at most {MAX_ROWS} rows"),
        ));
    }
    Ok(())
}

/// Validates every row and drops repeats within the request (the first occurrence wins).
pub fn plan(parsed: Vec<Result<CreateContact, Vec<FieldError>>>) -> Plan {
    let mut report = ImportReport {
        received: parsed.len(),
        ..ImportReport::default()
    };
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut rows = Vec::with_capacity(parsed.len());
    for (index, input) in parsed.into_iter().enumerate() {
        let row = index + 1;
        let contact = match input.and_then(NewContact::parse) {
            Ok(contact) => contact,
            Err(errors) => {
                report.invalid.push(InvalidRow { row, errors });
                continue;
            }
        };
        // Emails compare case-insensitively, as the unique index does.
        let keys = [
            contact
                .phone
                .as_ref()
                .map(|p| format!("phone:{}", p.as_str())),
            contact
                .email
                .as_ref()
                .map(|e| format!("email:{}", e.as_str().to_lowercase())),
        ];
        if let Some((key, first)) = keys
            .iter()
            .flatten()
            .find_map(|k| seen.get(k).map(|f| (k, *f)))
        {
            let field = key.split(':').next().unwrap_or("value");
            report.duplicates.push(DuplicateRow {
                row,
                reason: format!("repeats the {field} of row {first}"),
                duplicate_of_row: Some(first),
            });
            continue;
        }
        for key in keys.into_iter().flatten() {
            seen.insert(key, row);
        }
        rows.push((row, contact));
    }
    Plan { rows, report }
}
