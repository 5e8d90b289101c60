//! The scheduler: starts every scheduled campaign whose time has come.
//!
//! Each campaign is claimed by `app.claim_due_campaign` (a definer function returning ids
//! only), which locks its row with `FOR UPDATE SKIP LOCKED`; in the same transaction, now
//! under the campaign's tenant, the campaign is started as `POST …/start` would and its
//! `campaign_status_changed` event written. A racing scheduler skips the locked row and,
//! once this transaction commits, no longer sees the campaign as scheduled: each one starts
//! exactly once.

use uuid::Uuid;

use crate::campaigns::{Action, store as campaigns};
use crate::db::StoreError;
use crate::db::{Database, TenantTx};

/// Starts due campaigns until none is left; returns the ones this invocation started.
pub async fn run_once(db: &Database) -> Result<Vec<Uuid>, StoreError> {
    let mut started = Vec::new();
    // Campaigns that could not start (their template or group was deleted) are skipped for
    // the rest of this invocation, so one of them cannot stall the others.
    let mut skip: Vec<Uuid> = Vec::new();
    loop {
        let mut tx = db.begin_unscoped().await?;
        let Some((tenant, id)): Option<(Uuid, Uuid)> =
            sqlx::query_as("SELECT tenant_id, id FROM app.claim_due_campaign($1)")
                .bind(&skip)
                .fetch_optional(tx.conn())
                .await?
        else {
            tx.commit().await?;
            return Ok(started);
        };
        let mut tx = TenantTx::service(tx, tenant, "scheduler").await?;
        match campaigns::act(&mut tx, id, "start", |_| Action::Start).await {
            Ok(t) => {
                super::queue::emit_status(&mut tx, &t.campaign, t.from, t.to).await?;
                super::wake(&mut tx).await?;
                tx.commit().await?;
                tracing::info!(tenant_id = %tenant, campaign_id = %id, "scheduled campaign started");
                started.push(id);
            }
            Err(err) => {
                tx.rollback().await?;
                tracing::warn!(tenant_id = %tenant, campaign_id = %id, error = %err.report(), "scheduled campaign cannot start");
                skip.push(id);
            }
        }
    }
}
