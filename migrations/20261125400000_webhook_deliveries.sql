-- Webhook deliveries: one row per (event, webhook) to be sent, written by a trigger on the
-- event outbox in the writer's own transaction, so a committed event always has its
-- deliveries and a rolled-back one none. The deliverer claims due rows under a lease, sends,
-- logs each attempt in webhook_logs and schedules the next one.

CREATE TABLE webhook_deliveries (
    tenant_id        uuid        NOT NULL,
    id               uuid        NOT NULL DEFAULT gen_random_uuid(),
    webhook_id       uuid        NOT NULL,
    -- The event as the outbox holds it; its id is the stable `webhook-id` of every attempt.
    event_id         uuid        NOT NULL,
    event_type       text        NOT NULL,
    payload          jsonb       NOT NULL,
    event_created_at timestamptz NOT NULL,
    status           text        NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'succeeded', 'failed', 'cancelled')),
    -- Attempts started, counted when claimed: a crash mid-attempt still counts as one.
    attempts         integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    -- While set and in the future, a deliverer holds the row; a crashed one's lease expires
    -- and the attempt is made again, with the same webhook-id.
    locked_until     timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, webhook_id, event_id),
    FOREIGN KEY (tenant_id, webhook_id) REFERENCES webhooks (tenant_id, id)
);

-- The deliverer's questions: across tenants, what is due? Then, in one tenant, which rows?
-- (Without the second, each claim walks all of the tenant's deliveries: quadratic.)
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_due_by_tenant ON webhook_deliveries (tenant_id, next_attempt_at)
    WHERE status = 'pending';

ALTER TABLE webhook_deliveries ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhook_deliveries FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON webhook_deliveries
    USING (tenant_id = (SELECT app.current_tenant_id()))
    WITH CHECK (tenant_id = (SELECT app.current_tenant_id()));

GRANT SELECT, INSERT, UPDATE ON webhook_deliveries TO herald_app;
-- The deliverer stamps failing_since and disables failing endpoints (already granted on
-- webhooks); webhook logs stay append-only.

-- Fan-out. Invoker's rights, not SECURITY DEFINER: the writer is herald_app inside its own
-- tenant's transaction, which may already read that tenant's webhooks and (granted above)
-- insert its deliveries, so a definer would only widen what the trigger could touch.
-- `webhook_triggered` goes to WebSocket subscribers only: delivering it would make every
-- delivery cause another, without end. One statement per INSERT (bulk imports included).
CREATE FUNCTION app.fan_out_webhook_deliveries() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, public
    AS $$
BEGIN
    INSERT INTO webhook_deliveries
        (tenant_id, webhook_id, event_id, event_type, payload, event_created_at)
    SELECT e.tenant_id, w.id, e.id, e.type, e.payload, e.created_at
    FROM new_events e
    JOIN webhooks w
      ON w.tenant_id = e.tenant_id
     AND w.enabled
     AND w.deleted_at IS NULL
     AND e.type = ANY (w.event_types)
    WHERE e.type <> 'webhook_triggered';
    IF FOUND THEN
        -- Delivered at commit (and not at all on rollback); wakes waiting deliverers.
        PERFORM pg_notify('herald_webhook_deliveries', '');
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER outbox_events_webhook_deliveries
    AFTER INSERT ON outbox_events
    REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION app.fan_out_webhook_deliveries();

-- The deliverer's view across tenants (DESIGN.md rule 7): which tenants have deliveries
-- due, ids only. The work itself is claimed under each tenant's context.
GRANT SELECT ON webhook_deliveries TO herald_definer;
CREATE POLICY definer_reads ON webhook_deliveries FOR SELECT TO herald_definer USING (true);

CREATE FUNCTION app.tenants_with_due_webhook_deliveries(p_limit integer)
    RETURNS TABLE (tenant_id uuid)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, public
    AS $$
        SELECT DISTINCT d.tenant_id
        FROM (SELECT tenant_id FROM webhook_deliveries
              WHERE status = 'pending' AND next_attempt_at <= now()
                AND (locked_until IS NULL OR locked_until <= now())
              ORDER BY next_attempt_at
              LIMIT p_limit) d
    $$;

-- When the next pending delivery falls due (leases included), so that an idle deliverer
-- sleeps exactly that long. A time, no ids.
CREATE FUNCTION app.next_webhook_delivery_at() RETURNS timestamptz
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, public
    AS $$
        SELECT min(greatest(next_attempt_at, coalesce(locked_until, next_attempt_at)))
        FROM webhook_deliveries WHERE status = 'pending'
    $$;

ALTER FUNCTION app.tenants_with_due_webhook_deliveries(integer) OWNER TO herald_definer;
ALTER FUNCTION app.next_webhook_delivery_at() OWNER TO herald_definer;
REVOKE ALL ON FUNCTION app.tenants_with_due_webhook_deliveries(integer),
                       app.next_webhook_delivery_at(),
                       app.fan_out_webhook_deliveries() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.tenants_with_due_webhook_deliveries(integer),
                          app.next_webhook_delivery_at() TO herald_app;
