//! Campaign input as sent, and as parsed into domain types.

use serde::Deserialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::nullable;
use crate::domain::{FieldError, FieldErrors, Name, parse_time, parse_uuid};

/// `POST /api/campaigns`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateCampaign {
    pub name: String,
    /// A live message template of the tenant.
    #[schema(format = Uuid)]
    pub template_id: String,
    /// A live group of the tenant.
    #[schema(format = Uuid)]
    pub group_id: String,
    /// RFC 3339; `start` before this time schedules the campaign instead of running it.
    #[serde(default)]
    #[schema(format = DateTime)]
    pub scheduled_at: Option<String>,
}

/// `PATCH /api/campaigns/{id}` (draft or scheduled campaigns only): absent fields stay as
/// they are; `scheduledAt: null` clears the schedule of a draft.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateCampaign {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    #[schema(format = Uuid)]
    pub template_id: Option<String>,
    #[serde(default)]
    #[schema(format = Uuid)]
    pub group_id: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub scheduled_at: Option<Option<String>>,
}

/// A campaign ready to insert (its template and group still to be checked).
#[derive(Debug, Clone)]
pub struct NewCampaign {
    pub id: Uuid,
    pub name: Name,
    pub template_id: Uuid,
    pub group_id: Uuid,
    pub scheduled_at: Option<OffsetDateTime>,
}

/// A validated change to a campaign.
#[derive(Debug, Default)]
pub struct CampaignPatch {
    pub name: Option<Name>,
    pub template_id: Option<Uuid>,
    pub group_id: Option<Uuid>,
    pub scheduled_at: Option<Option<OffsetDateTime>>,
}

impl NewCampaign {
    pub fn parse(input: CreateCampaign) -> Result<NewCampaign, Vec<FieldError>> {
        let mut errors = FieldErrors::default();
        let name = errors.check("/name", Name::parse(&input.name));
        let template_id = errors.check("/templateId", parse_uuid(&input.template_id));
        let group_id = errors.check("/groupId", parse_uuid(&input.group_id));
        let scheduled_at = input
            .scheduled_at
            .as_deref()
            .map(|t| errors.check("/scheduledAt", parse_time(t)));
        errors.finish(|| NewCampaign {
            id: Uuid::now_v7(),
            name: name.expect("checked"),
            template_id: template_id.expect("checked"),
            group_id: group_id.expect("checked"),
            scheduled_at: scheduled_at.map(|t| t.expect("checked")),
        })
    }
}

impl CampaignPatch {
    pub fn parse(input: UpdateCampaign) -> Result<CampaignPatch, Vec<FieldError>> {
        let mut errors = FieldErrors::default();
        if input.name.is_none()
            && input.template_id.is_none()
            && input.group_id.is_none()
            && input.scheduled_at.is_none()
        {
            errors.push("", "the patch changes nothing");
        }
        let name = input.name.map(|n| errors.check("/name", Name::parse(&n)));
        let template_id = input
            .template_id
            .map(|t| errors.check("/templateId", parse_uuid(&t)));
        let group_id = input
            .group_id
            .map(|g| errors.check("/groupId", parse_uuid(&g)));
        let scheduled_at = input
            .scheduled_at
            .map(|t| t.map(|t| errors.check("/scheduledAt", parse_time(&t))));
        errors.finish(|| CampaignPatch {
            name: name.map(|n| n.expect("checked")),
            template_id: template_id.map(|t| t.expect("checked")),
            group_id: group_id.map(|g| g.expect("checked")),
            scheduled_at: scheduled_at.map(|t| t.map(|t| t.expect("checked"))),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(template: &str, scheduled: Option<&str>) -> CreateCampaign {
        CreateCampaign {
            name: "Spring sale".into(),
            template_id: template.into(),
            group_id: Uuid::now_v7().to_string(),
            scheduled_at: scheduled.map(Into::into),
        }
    }

    #[test]
    fn parses_a_campaign() {
        let t = Uuid::now_v7();
        let new =
            NewCampaign::parse(create(&t.to_string(), Some("2030-01-02T03:04:05+01:00"))).unwrap();
        assert_eq!(new.template_id, t);
        assert_eq!(
            new.scheduled_at.unwrap(),
            time::macros::datetime!(2030-01-02 02:04:05 UTC)
        );
    }

    #[test]
    fn names_every_bad_field() {
        let errors =
            NewCampaign::parse(create("nope", Some("tomorrow at noon"))).expect_err("refused");
        let pointers: Vec<_> = errors.iter().map(|e| e.pointer.as_str()).collect();
        assert_eq!(pointers, ["/templateId", "/scheduledAt"]);
    }

    #[test]
    fn an_empty_patch_is_refused() {
        assert!(CampaignPatch::parse(UpdateCampaign::default()).is_err());
        let clear = CampaignPatch::parse(UpdateCampaign {
            scheduled_at: Some(None),
            ..UpdateCampaign::default()
        })
        .unwrap();
        assert_eq!(clear.scheduled_at, Some(None));
    }
}
