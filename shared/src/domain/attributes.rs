//! Free-form contact attributes, used by templates (`{{ contact.attributes.city }}`).

use serde_json::{Map, Value};

use super::Invalid;

const MAX_KEYS: usize = 100;
const MAX_BYTES: usize = 16 * 1024;

/// A JSON object of at most 100 keys and 16 KiB, keys 1 to 64 characters.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Attributes(Map<String, Value>);

impl Attributes {
    pub fn parse(map: Map<String, Value>) -> Result<Attributes, Invalid> {
        if map.len() > MAX_KEYS {
            return Err(Invalid::new(format!("must have at most {MAX_KEYS} keys")));
        }
        if let Some(key) = map.keys().find(|k| k.is_empty() || k.chars().count() > 64) {
            return Err(Invalid::new(format!(
                "key {key:?} must be 1 to 64 characters"
            )));
        }
        let size = serde_json::to_vec(&map)
            .map(|v| v.len())
            .unwrap_or(usize::MAX);
        if size > MAX_BYTES {
            return Err(Invalid::new(format!(
                "must be at most {MAX_BYTES} bytes as JSON"
            )));
        }
        Ok(Attributes(map))
    }

    pub fn into_value(self) -> Value {
        Value::Object(self.0)
    }
}
