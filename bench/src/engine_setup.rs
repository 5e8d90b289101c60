//! Shared by the campaign-engine benchmarks: a fresh migrated database, a tenant, an
//! audience of contacts in one group, and a running campaign, all written with set-based
//! SQL as the owner.

use std::time::Duration;

use anyhow::Context;
use herald::db::Database;
use sqlx::PgPool;
use sqlx::migrate::MigrateDatabase;
use sqlx::postgres::Postgres;
use uuid::Uuid;

pub struct Setup {
    pub owner_url: String,
    pub app_url: String,
    pub owner: PgPool,
    pub tenant: Uuid,
    pub group: Uuid,
    pub template: Uuid,
}

impl Setup {
    pub async fn new(url: &str, contacts: i64) -> anyhow::Result<Setup> {
        if Postgres::database_exists(url).await? {
            Postgres::force_drop_database(url).await?;
        }
        herald_local::database::migrate(url).await?;
        let owner = PgPool::connect(url).await?;
        let tenant = herald_local::tenant::create(&owner, "Bench", "bench-owner")
            .await?
            .id;
        let group = Uuid::now_v7();
        let template = Uuid::now_v7();
        let mut tx = owner.begin().await?;
        sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
            .bind(tenant.to_string())
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO groups (tenant_id, id, name) VALUES ($1, $2, 'Everyone')")
            .bind(tenant)
            .bind(group)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO message_templates (tenant_id, id, name, body)
             VALUES ($1, $2, 'Hello', 'Hi {{ contact.name }}, {{ contact.attributes.n }}!')",
        )
        .bind(tenant)
        .bind(template)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO contacts (tenant_id, id, name, phone, attributes)
             SELECT $1, gen_random_uuid(), 'Name ' || i, '+1555' || lpad(i::text, 7, '0'),
                    jsonb_build_object('n', i)
             FROM generate_series(1, $2) AS i",
        )
        .bind(tenant)
        .bind(contacts)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO group_contacts (tenant_id, group_id, contact_id)
             SELECT $1, $2, id FROM contacts WHERE tenant_id = $1",
        )
        .bind(tenant)
        .bind(group)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        sqlx::query("VACUUM ANALYZE").execute(&owner).await?;
        let app_url = url.replacen("postgres://postgres@", "postgres://herald_app@", 1);
        Ok(Setup {
            owner_url: url.to_owned(),
            app_url,
            owner,
            tenant,
            group,
            template,
        })
    }

    /// A campaign of the group, already running (as `POST …/start` leaves it).
    pub async fn running_campaign(&self) -> anyhow::Result<Uuid> {
        let id = Uuid::now_v7();
        let mut tx = self.owner.begin().await?;
        sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
            .bind(self.tenant.to_string())
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO campaigns (tenant_id, id, name, template_id, group_id, status, started_at)
             VALUES ($1, $2, $3, $4, $5, 'running', now())",
        )
        .bind(self.tenant)
        .bind(id)
        .bind(format!("Campaign {id}"))
        .bind(self.template)
        .bind(self.group)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// The application role's pool, as the functions connect.
    pub fn app_db(&self, connections: u32) -> anyhow::Result<Database> {
        Database::connect_lazy(&self.app_url, connections, Duration::from_secs(60), "bench")
            .context("app pool")
    }

    pub async fn drop(self) -> anyhow::Result<()> {
        self.owner.close().await;
        // The app pool of the run may still hold connections.
        Postgres::force_drop_database(&self.owner_url).await?;
        Ok(())
    }
}
