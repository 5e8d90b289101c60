-- WebSocket connections and the dispatcher's way into the outbox.
--
-- `$connect` stores a connection under its tenant's context. `$disconnect` and `$default`
-- know only the connection id API Gateway gives them, and the dispatcher only that some
-- tenants have pending events: each finds its tenant through a narrow definer function that
-- returns ids only, then does its work under that tenant's context (DESIGN.md rule 7).

CREATE TABLE ws_connections (
    tenant_id     uuid        NOT NULL REFERENCES tenants (id),
    -- API Gateway's connection id (base64-ish, about 16 characters).
    connection_id text        NOT NULL CHECK (length(connection_id) BETWEEN 1 AND 128),
    sub           text        NOT NULL CHECK (length(sub) BETWEEN 1 AND 255),
    language      text        NOT NULL CHECK (language ~ '^[a-z]{2,3}$'),
    -- The event types this connection subscribed to; NULL for all of them.
    types         text[],
    connected_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, connection_id)
);
-- `$disconnect` and `$default` look a connection up by its id alone.
CREATE INDEX ws_connections_by_id ON ws_connections (connection_id);

ALTER TABLE ws_connections ENABLE ROW LEVEL SECURITY;
ALTER TABLE ws_connections FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON ws_connections
    USING (tenant_id = (SELECT app.current_tenant_id()))
    WITH CHECK (tenant_id = (SELECT app.current_tenant_id()));

GRANT SELECT, INSERT, UPDATE (types), DELETE ON ws_connections TO herald_app;

-- The dispatcher reads pending events and stamps them; it changes nothing else.
GRANT SELECT, UPDATE (dispatched_at) ON outbox_events TO herald_app;

-- The tenant of a connection, for `$disconnect` and `$default`.
GRANT SELECT ON ws_connections TO herald_definer;
CREATE POLICY definer_reads ON ws_connections FOR SELECT TO herald_definer USING (true);

CREATE FUNCTION app.ws_connection_tenant(p_connection_id text) RETURNS uuid
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, public
    AS $$ SELECT tenant_id FROM ws_connections WHERE connection_id = p_connection_id LIMIT 1 $$;

-- The tenants with events still to dispatch, oldest pending event first.
GRANT SELECT ON outbox_events TO herald_definer;
CREATE POLICY definer_reads ON outbox_events FOR SELECT TO herald_definer USING (true);

CREATE FUNCTION app.tenants_with_pending_events() RETURNS SETOF uuid
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, public
    AS $$
        SELECT tenant_id FROM outbox_events
        WHERE dispatched_at IS NULL
        GROUP BY tenant_id
        ORDER BY min(seq)
    $$;

ALTER FUNCTION app.ws_connection_tenant(text) OWNER TO herald_definer;
ALTER FUNCTION app.tenants_with_pending_events() OWNER TO herald_definer;
REVOKE ALL ON FUNCTION app.ws_connection_tenant(text), app.tenants_with_pending_events() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.ws_connection_tenant(text), app.tenants_with_pending_events() TO herald_app;

-- Wakes a listening dispatcher (herald-local) the moment events commit: NOTIFY is delivered
-- at commit, and only then. Once per statement, so a bulk import notifies once.
CREATE FUNCTION app.notify_outbox() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    PERFORM pg_notify('herald_outbox', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER outbox_events_notify
    AFTER INSERT ON outbox_events
    FOR EACH STATEMENT EXECUTE FUNCTION app.notify_outbox();
