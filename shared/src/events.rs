//! The event outbox. Every change writes its event in the change's own transaction; the
//! dispatcher later delivers it to WebSocket subscribers and webhooks.

use serde::Serialize;
use sqlx::types::Json;
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
    let (tenant, actor) = (tx.tenant(), Json(tx.actor().clone()));
    sqlx::query(
        "INSERT INTO outbox_events (tenant_id, id, type, payload, actor) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(tenant)
    .bind(id)
    .bind(kind.as_str())
    .bind(payload)
    .bind(actor)
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
    let (tenant, actor) = (tx.tenant(), Json(tx.actor().clone()));
    sqlx::query(
        "INSERT INTO outbox_events (tenant_id, id, type, payload, actor)
         SELECT $1, id, $3, payload, $5 FROM unnest($2::uuid[], $4::jsonb[]) AS e(id, payload)",
    )
    .bind(tenant)
    .bind(ids)
    .bind(kind.as_str())
    .bind(values)
    .bind(actor)
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// One event of the history (`GET /api/events`), as WebSocket subscribers receive it, with
/// who caused it.
#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub id: Uuid,
    #[serde(rename = "type")]
    #[sqlx(rename = "type")]
    pub kind: String,
    pub tenant_id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    #[sqlx(rename = "created_at")]
    pub timestamp: time::OffsetDateTime,
    /// Absent only on events written before actors were recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<crate::domain::Actor>)]
    pub actor: Option<serde_json::Value>,
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
}

/// Which events a history page holds.
#[derive(Debug, Default)]
pub struct HistoryQuery {
    /// Oldest first (onward from `cursor`) instead of newest first.
    pub ascending: bool,
    /// The event the page starts after, in its order.
    pub cursor: Option<Uuid>,
    pub types: Vec<EventType>,
    pub from: Option<time::OffsetDateTime>,
    pub until: Option<time::OffsetDateTime>,
    pub limit: i64,
}

/// One page of the tenant's events; `limit + 1` rows, so the caller can tell whether more
/// follow. `None` when the cursor names no event of this tenant (another tenant's, or one
/// already purged).
pub async fn history(
    tx: &mut TenantTx,
    query: &HistoryQuery,
) -> Result<Option<Vec<Event>>, sqlx::Error> {
    let start: Option<i64> = match query.cursor {
        None => None,
        Some(id) => match seq_of(tx, id).await? {
            None => return Ok(None),
            seq => seq,
        },
    };
    let (compare, order) = if query.ascending {
        (">", "ASC")
    } else {
        ("<", "DESC")
    };
    let types: Vec<&str> = query.types.iter().map(|t| t.as_str()).collect();
    let sql = format!(
        "SELECT id, type, tenant_id, created_at, actor, payload FROM outbox_events
         WHERE ($1::bigint IS NULL OR seq {compare} $1)
           AND (cardinality($2::text[]) = 0 OR type = ANY($2))
           AND ($3::timestamptz IS NULL OR created_at >= $3)
           AND ($4::timestamptz IS NULL OR created_at < $4)
         ORDER BY seq {order} LIMIT $5"
    );
    // Only the fixed comparison and order are formatted in; every value is bound.
    let rows = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(start)
        .bind(types)
        .bind(query.from)
        .bind(query.until)
        .bind(query.limit + 1)
        .fetch_all(tx.conn())
        .await?;
    Ok(Some(rows))
}

/// The outbox position of event `id` in the transaction's tenant.
pub async fn seq_of(tx: &mut TenantTx, id: Uuid) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT seq FROM outbox_events WHERE id = $1")
        .bind(id)
        .fetch_optional(tx.conn())
        .await
}

/// How long the history keeps events unless `HERALD_EVENT_RETENTION_DAYS` says otherwise.
pub const DEFAULT_RETENTION: std::time::Duration = std::time::Duration::from_secs(30 * 86_400);

/// Deletes dispatched events created before `before`, across tenants, through the
/// `app.purge_events` definer function (which refuses a cut-off less than a day old), in
/// batches; returns how many went.
pub async fn purge(
    db: &crate::db::Database,
    before: time::OffsetDateTime,
) -> Result<u64, sqlx::Error> {
    const BATCH: i32 = 10_000;
    let mut total = 0u64;
    loop {
        let mut tx = db.begin_unscoped().await?;
        let purged: i64 = sqlx::query_scalar("SELECT app.purge_events($1, $2)")
            .bind(before)
            .bind(BATCH)
            .fetch_one(tx.conn())
            .await?;
        tx.commit().await?;
        total += purged as u64;
        if purged < i64::from(BATCH) {
            return Ok(total);
        }
    }
}
