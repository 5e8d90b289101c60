-- The campaign engine: each tenant's delivery provider, recipients materialised as queued
-- messages (one per campaign and contact), the sender's leases, and the narrow definer
-- functions through which the scheduler and the sender find work across tenants.

-- Delivery providers -----------------------------------------------------------------------

CREATE TABLE providers (
    tenant_id                uuid        PRIMARY KEY REFERENCES tenants (id),
    kind                     text        NOT NULL CHECK (kind IN ('http', 'twilio', 'log')),
    -- Non-secret settings: the http endpoint; Twilio's account SID and sender.
    url                      text        CHECK (length(url) BETWEEN 1 AND 2048),
    account_sid              text        CHECK (length(account_sid) BETWEEN 1 AND 64),
    sender                   text        CHECK (length(sender) BETWEEN 1 AND 64),
    -- The http provider's signing secret (`whsec_…`) or Twilio's auth token. Never returned
    -- in full after the answer that set it; never logged.
    secret                   text,
    -- NULL: no per-tenant rate limit.
    messages_per_second      integer     CHECK (messages_per_second BETWEEN 1 AND 100000),
    -- A running campaign pauses after this many failures in a row (listmonk's
    -- max_send_errors).
    max_consecutive_failures integer     NOT NULL DEFAULT 10 CHECK (max_consecutive_failures BETWEEN 1 AND 100000),
    created_at               timestamptz NOT NULL DEFAULT now(),
    updated_at               timestamptz NOT NULL DEFAULT now(),
    CHECK (kind <> 'http' OR (url IS NOT NULL AND secret IS NOT NULL)),
    CHECK (kind <> 'twilio' OR (account_sid IS NOT NULL AND sender IS NOT NULL AND secret IS NOT NULL))
);
ALTER TABLE providers ENABLE ROW LEVEL SECURITY;
ALTER TABLE providers FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON providers
    USING (tenant_id = (SELECT app.current_tenant_id()))
    WITH CHECK (tenant_id = (SELECT app.current_tenant_id()));
GRANT SELECT, INSERT, UPDATE ON providers TO herald_app;

-- Campaign progress ----------------------------------------------------------------------

ALTER TABLE campaigns
    -- Materialisation walks the group by contact id; the last one done, so it resumes.
    ADD COLUMN materialized_through  uuid,
    -- Every recipient is queued (no more messages will appear for the campaign).
    ADD COLUMN materialized_at       timestamptz,
    -- The template as it was when the campaign started: every message renders the same one.
    ADD COLUMN channel               text CHECK (channel IN ('sms', 'email')),
    ADD COLUMN subject_source        text,
    ADD COLUMN body_source           text,
    ADD COLUMN consecutive_failures  integer NOT NULL DEFAULT 0,
    -- At most one campaign_progress event a second.
    ADD COLUMN progress_emitted_at   timestamptz;

-- Messages: the queue --------------------------------------------------------------------

-- A campaign message's body is rendered when the sender claims it (the template compiled
-- once per campaign), so a queued one has none yet.
ALTER TABLE messages ALTER COLUMN body DROP NOT NULL;
ALTER TABLE messages DROP CONSTRAINT messages_status_check;
ALTER TABLE messages ADD CONSTRAINT messages_status_check
    CHECK (status IN ('queued', 'sending', 'sent', 'delivered', 'read', 'failed', 'cancelled'));
ALTER TABLE messages
    -- A `sending` message belongs to the sender holding the lease until then; after it, any
    -- sender may take it again (a crash, or a transient error's backoff).
    ADD COLUMN leased_until timestamptz,
    ADD COLUMN attempts     integer NOT NULL DEFAULT 0,
    ADD COLUMN cancelled_at timestamptz;

-- One message per campaign and contact, however often materialisation runs.
CREATE UNIQUE INDEX messages_campaign_contact ON messages (tenant_id, campaign_id, contact_id)
    WHERE campaign_id IS NOT NULL;
-- The work queue: what the sender may claim, per tenant in id order.
CREATE INDEX messages_pending ON messages (tenant_id, id) WHERE status IN ('queued', 'sending');

-- UUIDv7 in SQL (PostgreSQL 15 has none): the time of `at` to the millisecond, then random
-- bits, with version 7 and the RFC 4122 variant. Message ids are v7 and their created_at is
-- the id's time, as messages::store::insert keeps them.
CREATE FUNCTION app.uuid_v7(at timestamptz) RETURNS uuid
    LANGUAGE sql VOLATILE PARALLEL SAFE
    AS $$
        SELECT encode(
            set_bit(set_bit(
                overlay(uuid_send(gen_random_uuid())
                        PLACING substring(int8send(floor(extract(epoch FROM at) * 1000)::bigint) FROM 3)
                        FROM 1 FOR 6),
                52, 1), 53, 1),
            'hex')::uuid
    $$;
GRANT EXECUTE ON FUNCTION app.uuid_v7(timestamptz) TO herald_app;

-- Work across tenants (DESIGN.md rule 7) ---------------------------------------------------

-- The scheduler: one due scheduled campaign, locked (SKIP LOCKED) until the caller's
-- transaction ends, so two racing schedulers never take the same one. The caller then
-- starts it under its tenant's context in that same transaction. The definer may lock due
-- campaigns but not change them (WITH CHECK false).
GRANT SELECT, UPDATE ON campaigns TO herald_definer;
CREATE POLICY definer_due ON campaigns FOR SELECT TO herald_definer
    USING (status = 'scheduled' AND deleted_at IS NULL);
CREATE POLICY definer_lock_due ON campaigns FOR UPDATE TO herald_definer
    USING (status = 'scheduled' AND deleted_at IS NULL) WITH CHECK (false);

CREATE FUNCTION app.claim_due_campaign(p_skip uuid[])
    RETURNS TABLE (tenant_id uuid, id uuid)
    LANGUAGE sql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, public
    AS $$
        SELECT c.tenant_id, c.id FROM campaigns c
        WHERE c.status = 'scheduled' AND c.deleted_at IS NULL AND c.scheduled_at <= now()
          AND NOT (c.id = ANY (p_skip))
        ORDER BY c.scheduled_at
        LIMIT 1
        FOR UPDATE SKIP LOCKED
    $$;

-- The sender: campaigns whose recipients are still to be queued.
CREATE POLICY definer_materializing ON campaigns FOR SELECT TO herald_definer
    USING (status IN ('running', 'paused') AND materialized_at IS NULL AND deleted_at IS NULL);
CREATE INDEX campaigns_materializing ON campaigns (started_at)
    WHERE status IN ('running', 'paused') AND materialized_at IS NULL AND deleted_at IS NULL;

CREATE FUNCTION app.campaigns_to_materialize(p_limit integer)
    RETURNS TABLE (tenant_id uuid, id uuid)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, public
    AS $$
        SELECT c.tenant_id, c.id FROM campaigns c
        WHERE c.status IN ('running', 'paused') AND c.materialized_at IS NULL
          AND c.deleted_at IS NULL
        ORDER BY c.started_at
        LIMIT p_limit
    $$;

-- The sender: tenants with messages waiting (queued, or sending with an expired lease),
-- found by skipping through messages_pending one tenant at a time.
GRANT SELECT ON messages TO herald_definer;
CREATE POLICY definer_pending ON messages FOR SELECT TO herald_definer
    USING (status IN ('queued', 'sending'));

CREATE FUNCTION app.tenants_with_pending_messages(p_limit integer)
    RETURNS TABLE (tenant_id uuid)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, public
    AS $$
        WITH RECURSIVE t(tenant_id) AS (
            (SELECT m.tenant_id FROM messages m
             WHERE m.status IN ('queued', 'sending') ORDER BY m.tenant_id LIMIT 1)
            UNION ALL
            SELECT (SELECT m.tenant_id FROM messages m
                    WHERE m.status IN ('queued', 'sending') AND m.tenant_id > t.tenant_id
                    ORDER BY m.tenant_id LIMIT 1)
            FROM t WHERE t.tenant_id IS NOT NULL
        )
        SELECT t.tenant_id FROM t WHERE t.tenant_id IS NOT NULL LIMIT p_limit
    $$;

ALTER FUNCTION app.claim_due_campaign(uuid[]) OWNER TO herald_definer;
ALTER FUNCTION app.campaigns_to_materialize(integer) OWNER TO herald_definer;
ALTER FUNCTION app.tenants_with_pending_messages(integer) OWNER TO herald_definer;
REVOKE ALL ON FUNCTION app.claim_due_campaign(uuid[]), app.campaigns_to_materialize(integer),
    app.tenants_with_pending_messages(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.claim_due_campaign(uuid[]), app.campaigns_to_materialize(integer),
    app.tenants_with_pending_messages(integer) TO herald_app;
