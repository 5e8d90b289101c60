//! Phone numbers, stored in E.164.

use super::Invalid;

/// A phone number valid for its country's numbering plan, held in E.164 (`+14155552671`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Phone(String);

impl Phone {
    /// Accepts international notation with the usual separators (`+1 (415) 555-2671`) and
    /// normalises it. Without a leading `+` the country would be a guess, so it is refused.
    pub fn parse(input: &str) -> Result<Phone, Invalid> {
        let invalid =
            || Invalid::new("must be a phone number in international format, such as +14155552671");
        let trimmed = input.trim();
        if !trimmed.starts_with('+') || trimmed.len() > 32 {
            return Err(invalid());
        }
        let number = phonenumber::parse(None, trimmed).map_err(|_| invalid())?;
        if !phonenumber::is_valid(&number) {
            return Err(invalid());
        }
        Ok(Phone(
            number.format().mode(phonenumber::Mode::E164).to_string(),
        ))
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
    fn normalises_to_e164() {
        assert_eq!(
            Phone::parse("+1 (415) 555-2671").unwrap().as_str(),
            "+14155552671"
        );
        assert_eq!(
            Phone::parse("+44 20 7946 0958").unwrap().as_str(),
            "+442079460958"
        );
    }

    #[test]
    fn refuses_what_is_not_a_number() {
        for bad in [
            "",
            "4155552671",
            "+1",
            "+1 000 000 0000",
            "+abc",
            "hello",
            "+999999999999999",
        ] {
            assert!(Phone::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
