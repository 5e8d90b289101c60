-- API keys, the actor on every event, the event history and WebSocket replay.

-- API keys: a tenant's credentials for servers. Only a hash of the secret is kept; the key
-- is shown once, when created. The role is never `owner`: a key cannot change the tenant's
-- ownership, and losing one cannot lose the tenant.
CREATE TABLE api_keys (
    tenant_id    uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id           uuid        NOT NULL,
    name         text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    role         text        NOT NULL CHECK (role IN ('admin', 'member', 'viewer')),
    -- The key's first characters (`hk_` and four more), so people can tell keys apart.
    prefix       text        NOT NULL CHECK (prefix ~ '^hk_[A-Za-z0-9_-]{4}$'),
    -- HMAC-SHA-256 of the whole key (herald::apikeys::Secret::hash).
    hash         bytea       NOT NULL CHECK (length(hash) = 32),
    created_by   jsonb       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    last_used_at timestamptz,
    revoked_at   timestamptz,
    PRIMARY KEY (tenant_id, id)
);
-- Across tenants: a key names its own tenant.
CREATE UNIQUE INDEX api_keys_hash ON api_keys (hash);

ALTER TABLE api_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE api_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON api_keys
    USING (tenant_id = (SELECT app.current_tenant_id()))
    WITH CHECK (tenant_id = (SELECT app.current_tenant_id()));

GRANT SELECT, INSERT, UPDATE (revoked_at) ON api_keys TO herald_app;

GRANT SELECT, UPDATE (last_used_at) ON api_keys TO herald_definer;
CREATE POLICY definer_reads ON api_keys FOR SELECT TO herald_definer USING (true);
CREATE POLICY definer_touches ON api_keys FOR UPDATE TO herald_definer USING (true) WITH CHECK (true);

-- The way into a tenant for an API key, as app.enter_tenant is for a member: finds the live
-- key by its hash, sets the transaction's tenant to the key's, and answers the key's id,
-- tenant and role, and whether its last use is more than a minute old (the caller then
-- records it with app.touch_api_key, outside a read-only transaction). No row: no such key,
-- or revoked, or expired; the three are one answer.
CREATE FUNCTION app.enter_api_key(p_hash bytea, p_request text)
    RETURNS TABLE (key_id uuid, tenant_id uuid, role text, stale boolean)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, public
    AS $$
DECLARE
    ignored text;
    k api_keys%ROWTYPE;
BEGIN
    SELECT * INTO k FROM api_keys a
    WHERE a.hash = p_hash AND a.revoked_at IS NULL AND (a.expires_at IS NULL OR a.expires_at > now());
    IF NOT FOUND THEN
        RETURN;
    END IF;
    ignored := set_config('app.tenant_id', k.tenant_id::text, true);
    IF p_request <> '' THEN
        ignored := set_config('application_name',
            left('req=' || p_request || ' ' || current_setting('application_name'), 63), true);
    END IF;
    key_id := k.id;
    tenant_id := k.tenant_id;
    role := k.role;
    stale := k.last_used_at IS NULL OR k.last_used_at < now() - interval '1 minute';
    RETURN NEXT;
END
$$;

-- Records a key's use; at most once a minute, whoever calls.
CREATE FUNCTION app.touch_api_key(p_key uuid) RETURNS void
    LANGUAGE sql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, public
    AS $$
        UPDATE api_keys SET last_used_at = now()
        WHERE id = p_key AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')
    $$;

ALTER FUNCTION app.enter_api_key(bytea, text) OWNER TO herald_definer;
ALTER FUNCTION app.touch_api_key(uuid) OWNER TO herald_definer;
REVOKE ALL ON FUNCTION app.enter_api_key(bytea, text), app.touch_api_key(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.enter_api_key(bytea, text), app.touch_api_key(uuid) TO herald_app;

-- Who caused each event: {"type":"user","sub":…}, {"type":"apiKey","id":…} or
-- {"type":"system","function":…}. NULL only on events written before this migration.
ALTER TABLE outbox_events ADD COLUMN actor jsonb
    CHECK (actor IS NULL OR actor->>'type' IN ('user', 'apiKey', 'system'));
ALTER TABLE webhook_deliveries ADD COLUMN actor jsonb;

CREATE OR REPLACE FUNCTION app.fan_out_webhook_deliveries() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, public
    AS $$
BEGIN
    INSERT INTO webhook_deliveries
        (tenant_id, webhook_id, event_id, event_type, payload, event_created_at, actor)
    SELECT e.tenant_id, w.id, e.id, e.type, e.payload, e.created_at, e.actor
    FROM new_events e
    JOIN webhooks w
      ON w.tenant_id = e.tenant_id
     AND w.enabled
     AND w.deleted_at IS NULL
     AND e.type = ANY (w.event_types)
    WHERE e.type <> 'webhook_triggered';
    IF FOUND THEN
        PERFORM pg_notify('herald_webhook_deliveries', '');
    END IF;
    RETURN NULL;
END
$$;

-- The event history reads newest first, or onward from an event, by seq (the primary key);
-- the time filter on created_at is checked on those rows.

-- Retention: the scheduler purges dispatched events older than the retention period, across
-- tenants, through this function only. It refuses a cut-off less than a day old, so the app
-- role can never empty a tenant's recent history.
GRANT DELETE ON outbox_events TO herald_definer;
CREATE POLICY definer_purges ON outbox_events FOR DELETE TO herald_definer USING (true);

CREATE FUNCTION app.purge_events(p_before timestamptz, p_limit integer) RETURNS bigint
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, public
    AS $$
DECLARE
    purged bigint;
BEGIN
    IF p_before > now() - interval '1 day' THEN
        RAISE EXCEPTION 'events are kept at least a day (cut-off %)', p_before
            USING ERRCODE = 'check_violation';
    END IF;
    WITH old AS (
        SELECT tenant_id, seq FROM outbox_events
        WHERE created_at < p_before AND dispatched_at IS NOT NULL
        LIMIT p_limit
    )
    DELETE FROM outbox_events e USING old WHERE e.tenant_id = old.tenant_id AND e.seq = old.seq;
    GET DIAGNOSTICS purged = ROW_COUNT;
    RETURN purged;
END
$$;
CREATE INDEX outbox_events_created ON outbox_events (created_at) WHERE dispatched_at IS NOT NULL;

ALTER FUNCTION app.purge_events(timestamptz, integer) OWNER TO herald_definer;
REVOKE ALL ON FUNCTION app.purge_events(timestamptz, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.purge_events(timestamptz, integer) TO herald_app;

-- Replay after a reconnect: `$connect … ?since=<event id>` stores the seq after which the
-- connection wants every event. The dispatcher, holding the tenant's outbox lock, posts the
-- dispatched events after it, then clears it; until then the connection gets no live events,
-- so each event reaches it once, by replay or live, never both and never neither.
ALTER TABLE ws_connections ADD COLUMN replay_after bigint;
GRANT UPDATE (replay_after) ON ws_connections TO herald_app;

CREATE OR REPLACE FUNCTION app.tenants_with_pending_events() RETURNS SETOF uuid
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, public
    AS $$
        SELECT tenant_id FROM (
            SELECT tenant_id, min(seq) AS first FROM outbox_events
            WHERE dispatched_at IS NULL GROUP BY tenant_id
            UNION ALL
            SELECT tenant_id, 0 FROM ws_connections WHERE replay_after IS NOT NULL
        ) t
        GROUP BY tenant_id
        ORDER BY min(first)
    $$;
