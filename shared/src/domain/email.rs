//! Email addresses.

use std::str::FromStr;

use super::Invalid;

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
        let address = email_address::EmailAddress::from_str(trimmed).map_err(|_| invalid())?;
        // A display name ("Ada <ada@example.com>") is a different thing from an address.
        if address.as_str() != trimmed || !address.domain().contains('.') {
            return Err(invalid());
        }
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
