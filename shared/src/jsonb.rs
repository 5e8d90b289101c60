//! `jsonb` values passed on as PostgreSQL wrote them.

use serde::{Serialize, Serializer};
use serde_json::value::RawValue;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgTypeInfo, PgValueFormat, PgValueRef};
use sqlx::{Postgres, Type, ValueRef};

/// The text of a `jsonb` value as PostgreSQL wrote it, which is valid JSON by construction, so
/// it is passed on as it is. Decoded into a `RawValue`, each contact's attributes were parsed
/// once more only to check them: a fortieth of a contact list's CPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonbText(String);

/// [`JsonbText`] borrowed from the row it was decoded from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonbStr<'r>(&'r str);

impl JsonbText {
    pub fn get(&self) -> &str {
        &self.0
    }

    pub fn as_jsonb_str(&self) -> JsonbStr<'_> {
        JsonbStr(&self.0)
    }
}

impl<'r> JsonbStr<'r> {
    pub fn get(self) -> &'r str {
        self.0
    }

    pub fn to_jsonb_text(self) -> JsonbText {
        JsonbText(self.0.to_owned())
    }
}

/// Any JSON value, as serde_json writes it (in tests, where no database wrote it).
impl From<&serde_json::Value> for JsonbText {
    fn from(value: &serde_json::Value) -> JsonbText {
        JsonbText(value.to_string())
    }
}

impl Serialize for JsonbText {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // serde writes text verbatim only through serde_json's RawValue. Borrowing one checks
        // the text again; this path serves single contacts and events, not lists (see
        // `contacts::json`).
        let raw: &RawValue = serde_json::from_str(&self.0).map_err(serde::ser::Error::custom)?;
        raw.serialize(serializer)
    }
}

impl Type<Postgres> for JsonbStr<'_> {
    fn type_info() -> PgTypeInfo {
        <serde_json::Value as Type<Postgres>>::type_info()
    }

    fn compatible(ty: &PgTypeInfo) -> bool {
        <serde_json::Value as Type<Postgres>>::compatible(ty)
    }
}

impl<'r> sqlx::Decode<'r, Postgres> for JsonbStr<'r> {
    fn decode(value: PgValueRef<'r>) -> Result<JsonbStr<'r>, BoxDynError> {
        // Binary `jsonb` starts with a format version, 1 so far; `json` and text are the text.
        let is_jsonb = *value.type_info() == <serde_json::Value as Type<Postgres>>::type_info();
        let format = value.format();
        let bytes = value.as_bytes()?;
        let text = match (format, bytes.split_first()) {
            (PgValueFormat::Binary, Some((1, text))) if is_jsonb => text,
            (PgValueFormat::Binary, Some((version, _))) if is_jsonb => {
                return Err(format!("unsupported jsonb format version {version}").into());
            }
            _ => bytes,
        };
        Ok(JsonbStr(std::str::from_utf8(text)?))
    }
}

impl Type<Postgres> for JsonbText {
    fn type_info() -> PgTypeInfo {
        <JsonbStr<'_> as Type<Postgres>>::type_info()
    }

    fn compatible(ty: &PgTypeInfo) -> bool {
        <JsonbStr<'_> as Type<Postgres>>::compatible(ty)
    }
}

impl<'r> sqlx::Decode<'r, Postgres> for JsonbText {
    fn decode(value: PgValueRef<'r>) -> Result<JsonbText, BoxDynError> {
        JsonbStr::decode(value).map(JsonbStr::to_jsonb_text)
    }
}
