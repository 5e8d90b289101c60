-- Groups, message templates, campaigns, messages, webhooks and their logs; tenant
-- self-service. Every table follows the contacts pattern: tenant_id first in every key,
-- ENABLE + FORCE row-level security, text columns with CHECKs instead of enums.

-- Definer functions (DESIGN.md rule 7) are owned by this role: it cannot log in, and the
-- only rows it may see beyond the current tenant's are those its own policies below open,
-- so a definer function is exactly as wide as its policy and its body. No BYPASSRLS needed,
-- which RDS would not grant anyway.
DO $$
BEGIN
    CREATE ROLE herald_definer NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
EXCEPTION
    WHEN duplicate_object OR unique_violation THEN NULL;
END
$$;
GRANT USAGE ON SCHEMA app TO herald_definer;

-- Groups ---------------------------------------------------------------------------------

CREATE TABLE groups (
    tenant_id    uuid        NOT NULL REFERENCES tenants (id),
    id           uuid        NOT NULL,
    name         text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description  text        CHECK (length(description) <= 2000),
    -- Live members, kept in step by the statements that add and remove them.
    member_count integer     NOT NULL DEFAULT 0 CHECK (member_count >= 0),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    deleted_at   timestamptz,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX groups_name_live ON groups (tenant_id, lower(name)) WHERE deleted_at IS NULL;
CREATE INDEX groups_live ON groups (tenant_id, id DESC) WHERE deleted_at IS NULL;

CREATE TABLE group_contacts (
    tenant_id  uuid        NOT NULL,
    group_id   uuid        NOT NULL,
    contact_id uuid        NOT NULL,
    added_at   timestamptz NOT NULL DEFAULT now(),
    -- Members of a group, in contact order: pages and campaign recipients walk this.
    PRIMARY KEY (tenant_id, group_id, contact_id),
    FOREIGN KEY (tenant_id, group_id) REFERENCES groups (tenant_id, id),
    FOREIGN KEY (tenant_id, contact_id) REFERENCES contacts (tenant_id, id)
);
-- Groups of a contact (GET /api/contacts?groupId= goes the other way, by the key above).
CREATE INDEX group_contacts_by_contact ON group_contacts (tenant_id, contact_id);

-- Message templates ----------------------------------------------------------------------

CREATE TABLE message_templates (
    tenant_id  uuid        NOT NULL REFERENCES tenants (id),
    id         uuid        NOT NULL,
    name       text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    channel    text        NOT NULL DEFAULT 'sms' CHECK (channel IN ('sms', 'email')),
    subject    text        CHECK (length(subject) <= 998),
    body       text        NOT NULL CHECK (length(body) BETWEEN 1 AND 20000),
    -- The variables the body uses, extracted when it is saved.
    variables  text[]      NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX message_templates_name_live ON message_templates (tenant_id, lower(name)) WHERE deleted_at IS NULL;
CREATE INDEX message_templates_live ON message_templates (tenant_id, id DESC) WHERE deleted_at IS NULL;

-- Campaigns ------------------------------------------------------------------------------

CREATE TABLE campaigns (
    tenant_id        uuid        NOT NULL REFERENCES tenants (id),
    id               uuid        NOT NULL,
    name             text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    template_id      uuid        NOT NULL,
    group_id         uuid        NOT NULL,
    status           text        NOT NULL DEFAULT 'draft'
                     CHECK (status IN ('draft', 'scheduled', 'running', 'paused', 'completed', 'cancelled')),
    scheduled_at     timestamptz,
    started_at       timestamptz,
    completed_at     timestamptz,
    cancelled_at     timestamptz,
    recipients_count integer     NOT NULL DEFAULT 0,
    queued_count     integer     NOT NULL DEFAULT 0,
    sent_count       integer     NOT NULL DEFAULT 0,
    delivered_count  integer     NOT NULL DEFAULT 0,
    read_count       integer     NOT NULL DEFAULT 0,
    failed_count     integer     NOT NULL DEFAULT 0,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    deleted_at       timestamptz,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, template_id) REFERENCES message_templates (tenant_id, id),
    FOREIGN KEY (tenant_id, group_id) REFERENCES groups (tenant_id, id)
);
CREATE INDEX campaigns_live ON campaigns (tenant_id, id DESC) WHERE deleted_at IS NULL;
CREATE INDEX campaigns_by_status ON campaigns (tenant_id, status, id DESC) WHERE deleted_at IS NULL;
-- The scheduler's question, across tenants: which scheduled campaigns are due?
CREATE INDEX campaigns_due ON campaigns (scheduled_at) WHERE status = 'scheduled' AND deleted_at IS NULL;

-- Messages (history is never deleted) ----------------------------------------------------

CREATE TABLE messages (
    tenant_id           uuid        NOT NULL REFERENCES tenants (id),
    id                  uuid        NOT NULL,
    campaign_id         uuid,
    contact_id          uuid        NOT NULL,
    channel             text        NOT NULL DEFAULT 'sms' CHECK (channel IN ('sms', 'email')),
    -- Where it went, as it was when queued (the contact may change later).
    recipient           text        NOT NULL CHECK (length(recipient) BETWEEN 1 AND 254),
    body                text        NOT NULL CHECK (length(body) BETWEEN 1 AND 20000),
    status              text        NOT NULL DEFAULT 'queued'
                        CHECK (status IN ('queued', 'sending', 'sent', 'delivered', 'read', 'failed')),
    error               text        CHECK (length(error) <= 2000),
    provider_message_id text        CHECK (length(provider_message_id) <= 255),
    queued_at           timestamptz NOT NULL DEFAULT now(),
    sending_at          timestamptz,
    sent_at             timestamptz,
    delivered_at        timestamptz,
    read_at             timestamptz,
    failed_at           timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, campaign_id) REFERENCES campaigns (tenant_id, id),
    FOREIGN KEY (tenant_id, contact_id) REFERENCES contacts (tenant_id, id)
);
CREATE INDEX messages_recent ON messages (tenant_id, id DESC);
CREATE INDEX messages_by_campaign ON messages (tenant_id, campaign_id, status, id DESC) WHERE campaign_id IS NOT NULL;
CREATE INDEX messages_by_contact ON messages (tenant_id, contact_id, id DESC);
CREATE INDEX messages_by_status ON messages (tenant_id, status, id DESC);

-- Webhooks -------------------------------------------------------------------------------

CREATE TABLE webhooks (
    tenant_id                  uuid        NOT NULL REFERENCES tenants (id),
    id                         uuid        NOT NULL,
    url                        text        NOT NULL CHECK (length(url) BETWEEN 1 AND 2048),
    description                text        CHECK (length(description) <= 2000),
    event_types                text[]      NOT NULL CHECK (cardinality(event_types) >= 1),
    enabled                    boolean     NOT NULL DEFAULT true,
    -- Signing secrets (`whsec_…`). After a regeneration the previous one keeps signing
    -- until previous_secret_expires_at.
    secret                     text        NOT NULL,
    previous_secret            text,
    previous_secret_expires_at timestamptz,
    disabled_reason            text,
    failing_since              timestamptz,
    created_at                 timestamptz NOT NULL DEFAULT now(),
    updated_at                 timestamptz NOT NULL DEFAULT now(),
    deleted_at                 timestamptz,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX webhooks_live ON webhooks (tenant_id, id DESC) WHERE deleted_at IS NULL;

CREATE TABLE webhook_logs (
    tenant_id     uuid        NOT NULL,
    id            uuid        NOT NULL,
    webhook_id    uuid        NOT NULL,
    event_id      uuid        NOT NULL,
    event_type    text        NOT NULL,
    attempt       integer     NOT NULL CHECK (attempt >= 1),
    status_code   integer,
    duration_ms   integer,
    response_body text,
    error         text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, webhook_id) REFERENCES webhooks (tenant_id, id)
);
CREATE INDEX webhook_logs_by_webhook ON webhook_logs (tenant_id, webhook_id, id DESC);

-- Row-level security on every new table --------------------------------------------------

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['groups', 'group_contacts', 'message_templates', 'campaigns',
                             'messages', 'webhooks', 'webhook_logs']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %I
                 USING (tenant_id = (SELECT app.current_tenant_id()))
                 WITH CHECK (tenant_id = (SELECT app.current_tenant_id()))', t);
    END LOOP;
END
$$;

-- Least privilege: soft-deleted resources get no DELETE; memberships are real rows that come
-- and go; history (messages, webhook logs) is append-and-update only.
GRANT SELECT, INSERT, UPDATE ON groups, message_templates, campaigns, webhooks TO herald_app;
GRANT SELECT, INSERT, DELETE ON group_contacts TO herald_app;
GRANT SELECT, INSERT, UPDATE ON messages TO herald_app;
GRANT SELECT, INSERT ON webhook_logs TO herald_app;

-- Tenant self-service --------------------------------------------------------------------

-- The definer may read every membership (to list a caller's tenants) and create tenants
-- with their first owner; nothing else.
GRANT SELECT, INSERT ON tenants, tenant_members TO herald_definer;
CREATE POLICY definer_reads ON tenant_members FOR SELECT TO herald_definer USING (true);
CREATE POLICY definer_creates ON tenant_members FOR INSERT TO herald_definer WITH CHECK (role = 'owner');
CREATE POLICY definer_reads ON tenants FOR SELECT TO herald_definer USING (true);
CREATE POLICY definer_creates ON tenants FOR INSERT TO herald_definer WITH CHECK (true);

-- POST /api/tenants: a new tenant whose first owner is the caller.
CREATE FUNCTION app.create_tenant(p_id uuid, p_name text, p_owner text)
    RETURNS TABLE (id uuid, name text, created_at timestamptz)
    LANGUAGE sql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, public
    AS $$
        WITH t AS (
            INSERT INTO tenants (id, name) VALUES (p_id, p_name)
            RETURNING tenants.id, tenants.name, tenants.created_at
        ), m AS (
            INSERT INTO tenant_members (tenant_id, sub, role)
            SELECT t.id, p_owner, 'owner' FROM t
        )
        SELECT t.id, t.name, t.created_at FROM t
    $$;

-- GET /api/tenants: the caller's tenants and role in each.
CREATE FUNCTION app.tenants_of(p_sub text)
    RETURNS TABLE (id uuid, name text, role text, created_at timestamptz)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, public
    AS $$
        SELECT t.id, t.name, m.role, t.created_at
        FROM tenant_members m JOIN tenants t ON t.id = m.tenant_id
        WHERE m.sub = p_sub
        ORDER BY t.created_at, t.id
    $$;

CREATE INDEX tenant_members_by_sub ON tenant_members (sub);

ALTER FUNCTION app.create_tenant(uuid, text, text) OWNER TO herald_definer;
ALTER FUNCTION app.tenants_of(text) OWNER TO herald_definer;
REVOKE ALL ON FUNCTION app.create_tenant(uuid, text, text), app.tenants_of(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.create_tenant(uuid, text, text), app.tenants_of(text) TO herald_app;

-- Members administration runs inside the tenant's own transaction, as the app role.
GRANT INSERT, UPDATE, DELETE ON tenant_members TO herald_app;
