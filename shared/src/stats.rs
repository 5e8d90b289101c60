//! The planner's statistics and rows they have never seen. Lists walk an index newest
//! first only while the planner expects more than a page of rows; rows the statistics do
//! not know of (a new tenant's import, a new group's members, a new campaign's messages) are
//! expected to number one or two, and the first pages fetch and sort all of them until
//! autovacuum comes round. So a bulk write asks `app.analyze_if_unseen` to analyse the table
//! when the planner's estimate of the rows is far off (see
//! `migrations/20261203100000_analyze_if_unseen.sql`).
//!
//! In the writer's own transaction, just before it commits: ANALYZE samples the
//! transaction's own rows, so the statistics commit together with them; no second
//! connection is taken; and a request whose commit waits for its `Idempotency-Key`
//! response has nothing committed yet that a later transaction could analyse.

use uuid::Uuid;

use crate::db::TenantTx;

/// Rows of one key, in the transaction's tenant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rows {
    /// The tenant's live contacts.
    Contacts,
    /// A group's members.
    GroupMembers(Uuid),
    /// A campaign's messages.
    CampaignMessages(Uuid),
}

impl Rows {
    fn table_and_key(self) -> (&'static str, Option<Uuid>) {
        match self {
            Rows::Contacts => ("contacts", None),
            Rows::GroupMembers(group) => ("group_contacts", Some(group)),
            Rows::CampaignMessages(campaign) => ("messages", Some(campaign)),
        }
    }
}

/// The function's own floor, repeated so that smaller writes spend no round trip: sorting
/// fewer rows costs less than any analysis.
pub const MIN_ROWS: u64 = 1000;

/// Analyses the table of `rows` if the planner expects far fewer of them than the `known`
/// the caller knows are there (for a writer: the rows it has just added); whether it did.
pub async fn analyze_if_unseen(
    tx: &mut TenantTx,
    rows: Rows,
    known: u64,
) -> Result<bool, sqlx::Error> {
    if known < MIN_ROWS {
        return Ok(false);
    }
    let (table, key) = rows.table_and_key();
    sqlx::query_scalar("SELECT app.analyze_if_unseen($1, $2, $3)")
        .bind(table)
        .bind(key)
        .bind(i64::try_from(known).unwrap_or(i64::MAX))
        .fetch_one(tx.conn())
        .await
}
