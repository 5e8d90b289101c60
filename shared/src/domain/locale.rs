//! The languages Herald answers in, chosen by `Accept-Language`.

use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Locale {
    #[default]
    En,
    Es,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LocaleInfo {
    pub code: &'static str,
    pub name: &'static str,
    pub default: bool,
}

impl Locale {
    pub const ALL: [Locale; 2] = [Locale::En, Locale::Es];

    pub fn code(self) -> &'static str {
        match self {
            Locale::En => "en",
            Locale::Es => "es",
        }
    }

    pub fn native_name(self) -> &'static str {
        match self {
            Locale::En => "English",
            Locale::Es => "Español",
        }
    }

    pub fn info(self) -> LocaleInfo {
        LocaleInfo {
            code: self.code(),
            name: self.native_name(),
            default: self == Locale::default(),
        }
    }

    /// The best supported language of an `Accept-Language` header (RFC 9110 §12.5.4),
    /// honouring q-values; English when nothing matches.
    pub fn negotiate(header: Option<&str>) -> Locale {
        let Some(header) = header else {
            return Locale::default();
        };
        let mut best: Option<(f32, Locale)> = None;
        for item in header.split(',') {
            let mut parts = item.split(';');
            let tag = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = parts
                .find_map(|p| {
                    p.trim()
                        .strip_prefix("q=")
                        .and_then(|q| q.parse::<f32>().ok())
                })
                .unwrap_or(1.0);
            let primary = tag.split('-').next().unwrap_or("");
            let Some(locale) = Locale::ALL.into_iter().find(|l| l.code() == primary) else {
                continue;
            };
            if q > 0.0 && best.is_none_or(|(bq, _)| q > bq) {
                best = Some((q, locale));
            }
        }
        best.map(|(_, l)| l).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiates_by_quality() {
        assert_eq!(
            Locale::negotiate(Some("es-MX,es;q=0.9,en;q=0.8")),
            Locale::Es
        );
        assert_eq!(
            Locale::negotiate(Some("fr, en;q=0.5, es;q=0.7")),
            Locale::Es
        );
        assert_eq!(Locale::negotiate(Some("fr")), Locale::En);
        assert_eq!(Locale::negotiate(Some("es;q=0")), Locale::En);
        assert_eq!(Locale::negotiate(None), Locale::En);
    }
}
