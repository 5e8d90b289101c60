//! Email addresses.

use email_address::{EmailAddress, Options};

use super::Invalid;

/// A bare address with a dotted domain: no display text ("Ada <ada@example.com>"), no
/// `[127.0.0.1]` literals, no single-label hosts.
const OPTIONS: Options = Options {
    minimum_sub_domains: 2,
    allow_domain_literal: false,
    allow_display_text: false,
    allow_long_local_parts: false,
};

/// A syntactically valid email address (RFC 5322 addr-spec), with its domain lowercased.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    pub fn parse(input: &str) -> Result<Email, Invalid> {
        let invalid = || Invalid::new("must be an email address, such as ada@example.com");
        let trimmed = input.trim();
        if trimmed.len() > 254 {
            return Err(invalid());
        }
        let address = EmailAddress::parse_with_options(trimmed, OPTIONS).map_err(|_| invalid())?;
        Ok(Email(format!(
            "{}@{}",
            address.local_part(),
            address.domain().to_ascii_lowercase()
        )))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_lowercases_the_domain() {
        assert_eq!(
            Email::parse(" Ada@Example.COM ").unwrap().as_str(),
            "Ada@example.com"
        );
    }

    #[test]
    fn refuses_non_addresses() {
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "Ada <ada@example.com>",
            "ada@localhost",
            "a b@example.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
