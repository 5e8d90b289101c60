//! Group input as sent, and as parsed into domain types.

use std::collections::HashSet;

use serde::Deserialize;
use uuid::Uuid;

use crate::domain::nullable;
use crate::domain::{FieldError, Invalid, Name};

/// Most contact ids one membership request may name.
pub const MAX_CONTACT_IDS: usize = 10_000;
/// Longest description, in characters.
pub const MAX_DESCRIPTION: usize = 2000;
/// Invalid ids reported one by one before the rest are summed up.
const MAX_ID_ERRORS: usize = 20;

/// `POST /api/groups`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateGroup {
    /// 1 to 200 characters, unique among the tenant's live groups (case-insensitive).
    pub name: String,
    /// At most 2000 characters.
    #[serde(default)]
    pub description: Option<String>,
}

/// `PATCH /api/groups/{id}`: absent fields stay as they are; `null` clears `description`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateGroup {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
}

/// `POST` and `DELETE /api/groups/{id}/contacts`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContactIds {
    /// 1 to 10,000 contact ids; repeats count once.
    #[schema(value_type = Vec<uuid::Uuid>, min_items = 1, max_items = 10000)]
    pub contact_ids: Vec<String>,
}

/// A description: at most 2000 characters, trimmed, no control characters but line
/// breaks and tabs. Blank means none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Description(String);

impl Description {
    pub fn parse(input: &str) -> Result<Option<Description>, Invalid> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Ok(None);
        }
        if trimmed.chars().count() > MAX_DESCRIPTION {
            return Err(Invalid::new(format!(
                "must be at most {MAX_DESCRIPTION} characters"
            )));
        }
        if trimmed
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
        {
            return Err(Invalid::new(
                "must not contain control characters other than line breaks and tabs",
            ));
        }
        Ok(Some(Description(trimmed.to_owned())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A group ready to insert.
#[derive(Debug, Clone)]
pub struct NewGroup {
    pub id: Uuid,
    pub name: Name,
    pub description: Option<Description>,
}

/// A validated change to a group.
#[derive(Debug, Default)]
pub struct GroupPatch {
    pub name: Option<Name>,
    /// `Some(None)` clears the description.
    pub description: Option<Option<Description>>,
}

/// The distinct contact ids of a membership request, in the order first named.
#[derive(Debug, Clone)]
pub struct MemberIds(Vec<Uuid>);

impl NewGroup {
    pub fn parse(input: CreateGroup) -> Result<NewGroup, Vec<FieldError>> {
        let mut errors = Vec::new();
        let name = Name::parse(&input.name)
            .map_err(|e| errors.push(FieldError::new("/name", e.0)))
            .ok();
        let description = match input.description.as_deref().map(Description::parse) {
            None => None,
            Some(Ok(d)) => d,
            Some(Err(e)) => {
                errors.push(FieldError::new("/description", e.0));
                None
            }
        };
        match name {
            Some(name) if errors.is_empty() => Ok(NewGroup {
                id: Uuid::now_v7(),
                name,
                description,
            }),
            _ => Err(errors),
        }
    }
}

impl GroupPatch {
    pub fn parse(input: UpdateGroup) -> Result<GroupPatch, Vec<FieldError>> {
        let mut errors = Vec::new();
        if input.name.is_none() && input.description.is_none() {
            errors.push(FieldError::new("", "the patch changes nothing"));
        }
        let name = input.name.and_then(|n| {
            Name::parse(&n)
                .map_err(|e| errors.push(FieldError::new("/name", e.0)))
                .ok()
        });
        let description = match input.description {
            None => None,
            Some(None) => Some(None),
            Some(Some(d)) => match Description::parse(&d) {
                Ok(d) => Some(d),
                Err(e) => {
                    errors.push(FieldError::new("/description", e.0));
                    None
                }
            },
        };
        if errors.is_empty() {
            Ok(GroupPatch { name, description })
        } else {
            Err(errors)
        }
    }
}

impl MemberIds {
    pub fn parse(input: ContactIds) -> Result<MemberIds, Vec<FieldError>> {
        let n = input.contact_ids.len();
        if n == 0 || n > MAX_CONTACT_IDS {
            return Err(vec![FieldError::new(
                "/contactIds",
                format!("must hold 1 to {MAX_CONTACT_IDS} contact ids"),
            )]);
        }
        let mut errors = Vec::new();
        let mut bad = 0usize;
        let mut seen = HashSet::with_capacity(n);
        let mut ids = Vec::with_capacity(n);
        for (i, raw) in input.contact_ids.iter().enumerate() {
            match Uuid::try_parse(raw.trim()) {
                Ok(id) => {
                    if seen.insert(id) {
                        ids.push(id);
                    }
                }
                Err(_) => {
                    bad += 1;
                    if errors.len() < MAX_ID_ERRORS {
                        errors.push(FieldError::new(
                            format!("/contactIds/{i}"),
                            "must be a UUID",
                        ));
                    }
                }
            }
        }
        if bad > errors.len() {
            errors.push(FieldError::new(
                "/contactIds",
                format!("{} more ids are not UUIDs", bad - errors.len()),
            ));
        }
        if errors.is_empty() {
            Ok(MemberIds(ids))
        } else {
            Err(errors)
        }
    }

    pub fn as_slice(&self) -> &[Uuid] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(raw: &[&str]) -> ContactIds {
        ContactIds {
            contact_ids: raw.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn member_ids_dedupe_in_order_and_point_at_bad_ones() {
        let (ua, ub) = (Uuid::now_v7(), Uuid::now_v7());
        let (a, b) = (ua.to_string(), ub.to_string());
        let parsed = MemberIds::parse(ids(&[&b, &a, &b])).unwrap();
        assert_eq!(parsed.as_slice(), &[ub, ua]);

        let errors = MemberIds::parse(ids(&[&a, "nope"])).unwrap_err();
        assert_eq!(errors[0].pointer, "/contactIds/1");
        assert!(MemberIds::parse(ids(&[])).is_err());

        let many: Vec<String> = (0..30).map(|i| format!("bad-{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let errors = MemberIds::parse(ids(&many)).unwrap_err();
        assert_eq!(errors.len(), MAX_ID_ERRORS + 1);
        assert_eq!(errors[MAX_ID_ERRORS].detail, "10 more ids are not UUIDs");
    }

    #[test]
    fn descriptions() {
        assert_eq!(Description::parse("  ").unwrap(), None);
        assert_eq!(
            Description::parse(" a\nb ").unwrap().unwrap().as_str(),
            "a\nb"
        );
        assert!(Description::parse(&"x".repeat(2001)).is_err());
        assert!(Description::parse(&"é".repeat(2000)).is_ok());
        assert!(Description::parse("a\u{7}").is_err());
    }

    #[test]
    fn patches() {
        assert!(GroupPatch::parse(UpdateGroup::default()).is_err());
        let clear = GroupPatch::parse(UpdateGroup {
            name: None,
            description: Some(None),
        })
        .unwrap();
        assert_eq!(clear.description, Some(None));
    }
}
