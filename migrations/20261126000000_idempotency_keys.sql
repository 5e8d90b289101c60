-- Idempotency keys (Stripe's semantics), per tenant: a POST carrying `Idempotency-Key` is
-- claimed here before it runs, marked committed inside the handler's own transaction, and
-- its response stored afterwards, so a retry replays the response instead of doing the work
-- again. Kept 24 hours.

CREATE TABLE idempotency_keys (
    tenant_id     uuid        NOT NULL REFERENCES tenants (id),
    key           text        NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    -- sha256 of the method, path, query and body: the same key with another request is 422.
    fingerprint   bytea       NOT NULL,
    -- While in the future and no response is stored, a request holds the key (a retry gets
    -- 409). A crashed holder's lease ends and a retry may run the request, unless…
    locked_until  timestamptz NOT NULL,
    -- …the request's own transaction committed: then it is never run again (set by the
    -- handler's transaction itself, so a crash cannot separate the work from this mark).
    committed_at  timestamptz,
    status        smallint    CHECK (status BETWEEN 100 AND 599),
    headers       jsonb,
    body          bytea,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, key)
);

-- The purge's question across tenants: which keys are older than a day?
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

ALTER TABLE idempotency_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE idempotency_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON idempotency_keys
    USING (tenant_id = (SELECT app.current_tenant_id()))
    WITH CHECK (tenant_id = (SELECT app.current_tenant_id()));

GRANT SELECT, INSERT, UPDATE, DELETE ON idempotency_keys TO herald_app;

-- The scheduler's purge across tenants (DESIGN.md rule 7): deletes keys past their 24 hours
-- and answers only how many. It runs as herald_definer, which may see and delete only those.
GRANT SELECT, DELETE ON idempotency_keys TO herald_definer;
CREATE POLICY definer_reads ON idempotency_keys FOR SELECT TO herald_definer USING (true);
CREATE POLICY definer_purges ON idempotency_keys FOR DELETE TO herald_definer
    USING (created_at < now() - interval '24 hours');

CREATE FUNCTION app.purge_idempotency_keys(max_rows integer) RETURNS integer
    LANGUAGE sql
    SECURITY DEFINER
    SET search_path = pg_catalog, public
    AS $$
    WITH gone AS (
        DELETE FROM idempotency_keys
        WHERE (tenant_id, key) IN (
            SELECT tenant_id, key FROM idempotency_keys
            WHERE created_at < now() - interval '24 hours'
            ORDER BY created_at
            LIMIT max_rows)
        RETURNING 1)
    SELECT count(*)::integer FROM gone
$$;
ALTER FUNCTION app.purge_idempotency_keys(integer) OWNER TO herald_definer;
REVOKE ALL ON FUNCTION app.purge_idempotency_keys(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.purge_idempotency_keys(integer) TO herald_app;
