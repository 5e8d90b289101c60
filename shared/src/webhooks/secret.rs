//! Webhook signing secrets: `whsec_` plus standard base64 of 32 random bytes (the Standard
//! Webhooks format). Shown in full only in the answers to create and regenerate; masked
//! (`whsec_…abcd`) everywhere else, events included.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

pub const PREFIX: &str = "whsec_";
/// Random bytes in a secret: an HMAC-SHA256 key's full width.
pub const BYTES: usize = 32;

/// A signing secret. It is not `Serialize` and its `Debug` is masked, so it cannot reach a
/// response, an event or a log by accident; [`Secret::expose`] is the one way out.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// A fresh secret from the operating system's random source.
    pub fn generate() -> Result<Secret, getrandom::Error> {
        let mut bytes = [0u8; BYTES];
        getrandom::fill(&mut bytes)?;
        Ok(Secret(format!("{PREFIX}{}", STANDARD.encode(bytes))))
    }

    /// The whole secret, for the create and regenerate answers (and, later, signing).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `whsec_…` and the last four characters (padding aside), enough to tell secrets apart.
    pub fn masked(&self) -> String {
        let body = self.0.strip_prefix(PREFIX).unwrap_or(&self.0);
        let body = body.trim_end_matches('=');
        let tail: String = {
            let chars: Vec<char> = body.chars().collect();
            chars[chars.len().saturating_sub(4)..].iter().collect()
        };
        format!("{PREFIX}…{tail}")
    }
}

impl From<String> for Secret {
    /// A secret as stored.
    fn from(stored: String) -> Secret {
        Secret(stored)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Secret").field(&self.masked()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_have_the_format_and_differ() {
        let a = Secret::generate().unwrap();
        let b = Secret::generate().unwrap();
        assert_ne!(a, b);
        let body = a.expose().strip_prefix(PREFIX).unwrap();
        assert_eq!(STANDARD.decode(body).unwrap().len(), BYTES);
    }

    #[test]
    fn masking_keeps_only_the_last_four_characters() {
        let s = Secret::from("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAwxyz=".to_owned());
        assert_eq!(s.masked(), "whsec_…wxyz");
        assert_eq!(format!("{s:?}"), "Secret(\"whsec_…wxyz\")");
        assert!(!format!("{s:?}").contains("AAAA"));
    }
}
