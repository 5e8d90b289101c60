//! A provider credential (Twilio's auth token, the http provider's signing secret as
//! stored). Not `Serialize`, and its `Debug` is masked, so it cannot reach a response, an
//! event or a log by accident; [`Credential::expose`] is the one way out.

use std::fmt;

#[derive(Clone, PartialEq, Eq)]
pub struct Credential(String);

impl Credential {
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `…` and the last four characters, enough to tell credentials apart.
    pub fn masked(&self) -> String {
        let chars: Vec<char> = self.0.chars().collect();
        let tail: String = chars[chars.len().saturating_sub(4)..].iter().collect();
        format!("…{tail}")
    }
}

impl From<String> for Credential {
    fn from(raw: String) -> Credential {
        Credential(raw)
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Credential").field(&self.masked()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_masked() {
        let c = Credential::from("0123456789abcdef".to_owned());
        assert_eq!(format!("{c:?}"), "Credential(\"…cdef\")");
        assert_eq!(c.expose(), "0123456789abcdef");
    }
}
