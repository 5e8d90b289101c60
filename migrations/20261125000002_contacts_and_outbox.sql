-- Contacts and the event outbox.

CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE EXTENSION IF NOT EXISTS btree_gin;

CREATE TABLE contacts (
    tenant_id    uuid        NOT NULL REFERENCES tenants (id),
    id           uuid        NOT NULL,
    name         text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    phone        text        CHECK (phone ~ '^\+[1-9][0-9]{6,14}$'),
    email        text        CHECK (length(email) BETWEEN 3 AND 254),
    attributes   jsonb       NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(attributes) = 'object'),
    opted_out_at timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    deleted_at   timestamptz,
    -- Keys lead with the tenant (DESIGN.md rule 6): foreign keys from groups and messages
    -- will name (tenant_id, id), so no row can point into another tenant.
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT contacts_reachable CHECK (phone IS NOT NULL OR email IS NOT NULL)
);

-- Uniqueness among live contacts of one tenant. Scoped to the tenant so that a conflict
-- never tells one tenant what another holds; partial so that a deleted contact's phone can
-- be used again.
CREATE UNIQUE INDEX contacts_phone_live ON contacts (tenant_id, phone)
    WHERE deleted_at IS NULL AND phone IS NOT NULL;
CREATE UNIQUE INDEX contacts_email_live ON contacts (tenant_id, lower(email))
    WHERE deleted_at IS NULL AND email IS NOT NULL;

-- Listing pages newest first by id (UUIDv7, so id order is creation order).
CREATE INDEX contacts_live ON contacts (tenant_id, id DESC) WHERE deleted_at IS NULL;

-- Substring search over name, email and phone.
CREATE INDEX contacts_search ON contacts
    USING gin (tenant_id, (name || ' ' || coalesce(email, '') || ' ' || coalesce(phone, '')) gin_trgm_ops)
    WHERE deleted_at IS NULL;

ALTER TABLE contacts ENABLE ROW LEVEL SECURITY;
ALTER TABLE contacts FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON contacts
    USING (tenant_id = (SELECT app.current_tenant_id()))
    WITH CHECK (tenant_id = (SELECT app.current_tenant_id()));

-- Contacts are soft-deleted: the application may never DELETE them.
GRANT SELECT, INSERT, UPDATE ON contacts TO herald_app;

-- The event outbox. Every change writes its event here in the change's own transaction, so
-- a committed change is never unannounced and a rolled-back one never announced. The
-- dispatcher drains it per tenant in `seq` order and stamps `dispatched_at`.
CREATE TABLE outbox_events (
    tenant_id     uuid        NOT NULL REFERENCES tenants (id),
    seq           bigint      GENERATED ALWAYS AS IDENTITY,
    id            uuid        NOT NULL,
    type          text        NOT NULL CHECK (type ~ '^[a-z]+(_[a-z]+)+$'),
    payload       jsonb       NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    dispatched_at timestamptz,
    PRIMARY KEY (tenant_id, seq),
    UNIQUE (tenant_id, id)
);

CREATE INDEX outbox_events_pending ON outbox_events (tenant_id, seq) WHERE dispatched_at IS NULL;

ALTER TABLE outbox_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE outbox_events FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON outbox_events
    USING (tenant_id = (SELECT app.current_tenant_id()))
    WITH CHECK (tenant_id = (SELECT app.current_tenant_id()));

-- Request handlers only append events; reading and stamping them is the dispatcher's.
GRANT INSERT ON outbox_events TO herald_app;
