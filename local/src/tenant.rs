//! Creating tenants from the command line (`herald-local tenant create`).

use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatedTenant {
    pub id: Uuid,
    pub name: String,
    pub owner: String,
}

/// Creates a tenant with `owner` as its owner, as the database owner. The tenant context is
/// set even so: with FORCE ROW LEVEL SECURITY the policies bind a non-superuser owner too
/// (RDS has no true superuser).
pub async fn create(owner_pool: &PgPool, name: &str, owner: &str) -> anyhow::Result<CreatedTenant> {
    let name = herald::domain::Name::parse(name).map_err(|e| anyhow::anyhow!("--name {e}"))?;
    anyhow::ensure!(
        !owner.trim().is_empty() && owner.len() <= 255,
        "--owner must be 1 to 255 characters"
    );
    let id = Uuid::now_v7();
    let mut tx = owner_pool.begin().await?;
    sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
    sqlx::query("INSERT INTO tenants (id, name) VALUES ($1, $2)")
        .bind(id)
        .bind(name.as_str())
        .execute(&mut *tx)
        .await?;
    add_member(&mut tx, id, owner, "owner").await?;
    tx.commit().await?;
    Ok(CreatedTenant {
        id,
        name: name.into_inner(),
        owner: owner.to_owned(),
    })
}

/// Adds (or changes) a member, inside a transaction whose tenant is `tenant`.
pub async fn add_member(
    tx: &mut sqlx::PgConnection,
    tenant: Uuid,
    sub: &str,
    role: &str,
) -> anyhow::Result<()> {
    sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
        .bind(tenant.to_string())
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO tenant_members (tenant_id, sub, role) VALUES ($1, $2, $3)
         ON CONFLICT (tenant_id, sub) DO UPDATE SET role = excluded.role",
    )
    .bind(tenant)
    .bind(sub)
    .bind(role)
    .execute(&mut *tx)
    .await?;
    Ok(())
}
