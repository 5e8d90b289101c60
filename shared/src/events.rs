//! The event outbox. Every change writes its event in the change's own transaction; the
//! dispatcher later delivers it to WebSocket subscribers and webhooks.

use serde::Serialize;
use uuid::Uuid;

use crate::db::TenantTx;

/// Event types: the seed's, plus `message_created`, `message_status_changed` and `campaign_progress`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventType {
    ContactCreated,
    ContactUpdated,
    ContactDeleted,
    GroupCreated,
    GroupUpdated,
    GroupDeleted,
    TemplateCreated,
    TemplateUpdated,
    TemplateDeleted,
    CampaignCreated,
    CampaignUpdated,
    CampaignDeleted,
    CampaignStatusChanged,
    MessageCreated,
    MessageStatusChanged,
    WebhookCreated,
    WebhookUpdated,
    WebhookDeleted,
    WebhookTriggered,
    CampaignProgress,
}

impl EventType {
    pub const ALL: [EventType; 20] = [
        EventType::ContactCreated,
        EventType::ContactUpdated,
        EventType::ContactDeleted,
        EventType::GroupCreated,
        EventType::GroupUpdated,
        EventType::GroupDeleted,
        EventType::TemplateCreated,
        EventType::TemplateUpdated,
        EventType::TemplateDeleted,
        EventType::CampaignCreated,
        EventType::CampaignUpdated,
        EventType::CampaignDeleted,
        EventType::CampaignStatusChanged,
        EventType::MessageCreated,
        EventType::MessageStatusChanged,
        EventType::WebhookCreated,
        EventType::WebhookUpdated,
        EventType::WebhookDeleted,
        EventType::WebhookTriggered,
        EventType::CampaignProgress,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::ContactCreated => "contact_created",
            EventType::ContactUpdated => "contact_updated",
            EventType::ContactDeleted => "contact_deleted",
            EventType::GroupCreated => "group_created",
            EventType::GroupUpdated => "group_updated",
            EventType::GroupDeleted => "group_deleted",
            EventType::TemplateCreated => "template_created",
            EventType::TemplateUpdated => "template_updated",
            EventType::TemplateDeleted => "template_deleted",
            EventType::CampaignCreated => "campaign_created",
            EventType::CampaignUpdated => "campaign_updated",
            EventType::CampaignDeleted => "campaign_deleted",
            EventType::CampaignStatusChanged => "campaign_status_changed",
            EventType::MessageCreated => "message_created",
            EventType::MessageStatusChanged => "message_status_changed",
            EventType::WebhookCreated => "webhook_created",
            EventType::WebhookUpdated => "webhook_updated",
            EventType::WebhookDeleted => "webhook_deleted",
            EventType::WebhookTriggered => "webhook_triggered",
            EventType::CampaignProgress => "campaign_progress",
        }
    }

    pub fn parse(name: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

/// Appends one event; returns its id, which subscribers use to drop duplicates.
pub async fn emit<T: Serialize>(
    tx: &mut TenantTx,
    kind: EventType,
    payload: &T,
) -> Result<Uuid, sqlx::Error> {
    let id = Uuid::now_v7();
    let payload = serde_json::to_value(payload).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let tenant = tx.tenant();
    sqlx::query("INSERT INTO outbox_events (tenant_id, id, type, payload) VALUES ($1, $2, $3, $4)")
        .bind(tenant)
        .bind(id)
        .bind(kind.as_str())
        .bind(payload)
        .execute(tx.conn())
        .await?;
    Ok(id)
}

/// Appends one event per payload in a single statement (bulk imports).
pub async fn emit_all<T: Serialize>(
    tx: &mut TenantTx,
    kind: EventType,
    payloads: &[T],
) -> Result<(), sqlx::Error> {
    if payloads.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = payloads.iter().map(|_| Uuid::now_v7()).collect();
    let values = payloads
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let tenant = tx.tenant();
    sqlx::query(
        "INSERT INTO outbox_events (tenant_id, id, type, payload)
         SELECT $1, id, $3, payload FROM unnest($2::uuid[], $4::jsonb[]) AS e(id, payload)",
    )
    .bind(tenant)
    .bind(ids)
    .bind(kind.as_str())
    .bind(values)
    .execute(tx.conn())
    .await?;
    Ok(())
}
