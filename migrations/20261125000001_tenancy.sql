-- Tenancy: the application role, the tenant context, tenants and their members.
--
-- Migrations run as the owner (the role in DATABASE_URL for `herald-local migrate`).
-- The functions connect as `herald_app`: it logs in, owns nothing, is not a superuser and
-- cannot bypass row-level security, so every tenant table's policy applies to it.

-- Roles are cluster-wide while databases are not: two databases migrating at once (the test
-- suite does this) may race to create the role, so a duplicate is not an error.
DO $$
BEGIN
    CREATE ROLE herald_app LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOREPLICATION;
EXCEPTION
    WHEN duplicate_object OR unique_violation THEN NULL;
END
$$;

CREATE SCHEMA app;
GRANT USAGE ON SCHEMA app TO herald_app;

-- The tenant of the current transaction, or NULL when none is set. Policies compare with
-- NULL and so match no rows: a forgotten tenant reads nothing rather than everything.
CREATE FUNCTION app.current_tenant_id() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT nullif(current_setting('app.tenant_id', true), '')::uuid $$;

CREATE TABLE tenants (
    id         uuid        PRIMARY KEY,
    name       text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE tenant_members (
    tenant_id  uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    sub        text        NOT NULL CHECK (length(sub) BETWEEN 1 AND 255),
    role       text        NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, sub)
);

ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenants FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenants
    USING (id = (SELECT app.current_tenant_id()))
    WITH CHECK (id = (SELECT app.current_tenant_id()));

ALTER TABLE tenant_members ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenant_members FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenant_members
    USING (tenant_id = (SELECT app.current_tenant_id()))
    WITH CHECK (tenant_id = (SELECT app.current_tenant_id()));

GRANT SELECT ON tenants, tenant_members TO herald_app;

-- The one way into a tenant: sets the transaction's tenant (never the session's, which
-- would leak to the next user of a pooled connection) and returns the caller's role there,
-- NULL when `sub` is not a member. One round trip, and the membership read itself runs
-- under the policy it has just selected.
CREATE FUNCTION app.enter_tenant(p_tenant uuid, p_sub text) RETURNS text
    LANGUAGE plpgsql VOLATILE
    AS $$
BEGIN
    PERFORM set_config('app.tenant_id', p_tenant::text, true);
    RETURN (SELECT role FROM tenant_members WHERE tenant_id = p_tenant AND sub = p_sub);
END
$$;

REVOKE ALL ON FUNCTION app.enter_tenant(uuid, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.enter_tenant(uuid, text) TO herald_app;
GRANT EXECUTE ON FUNCTION app.current_tenant_id() TO herald_app;
