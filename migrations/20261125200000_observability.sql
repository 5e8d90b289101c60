-- Observability and limits: the request id visible to PostgreSQL, per-minute performance
-- rollups, the latest slow queries, shared rate-limit counters, per-tenant limits.
--
-- Every table here is a tenant table (FORCE RLS, the usual policy). Functions write their
-- rows in short transactions of their own, one tenant at a time under that tenant's
-- context, never on a request's hot path: each process aggregates in memory and flushes
-- (see shared/src/rollup.rs and shared/src/ratelimit.rs).

-- A tenant's own requests-per-minute limit; NULL: the configured default
-- (HERALD_RATE_LIMIT_PER_MINUTE).
ALTER TABLE tenants ADD COLUMN rate_limit_per_minute integer
    CHECK (rate_limit_per_minute BETWEEN 1 AND 10000000);

-- app.enter_tenant, plus the request id and the tenant's rate limit in the same round trip.
-- The request id goes into `application_name` for the transaction only (SET LOCAL
-- semantics), so pg_stat_activity and a log_line_prefix with %a tie a slow statement to its
-- request, and the pooled connection gets its own name back at COMMIT or ROLLBACK.
-- `role` is NULL when `p_sub` is not a member.
CREATE FUNCTION app.enter_tenant(p_tenant uuid, p_sub text, p_request text)
    RETURNS TABLE (role text, rate_limit integer)
    LANGUAGE plpgsql VOLATILE
    AS $$
BEGIN
    PERFORM set_config('app.tenant_id', p_tenant::text, true);
    IF p_request <> '' THEN
        PERFORM set_config('application_name',
            left('req=' || p_request || ' ' || current_setting('application_name'), 63), true);
    END IF;
    RETURN QUERY
        SELECT (SELECT m.role FROM tenant_members m WHERE m.tenant_id = p_tenant AND m.sub = p_sub),
               (SELECT t.rate_limit_per_minute FROM tenants t WHERE t.id = p_tenant);
END
$$;

REVOKE ALL ON FUNCTION app.enter_tenant(uuid, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.enter_tenant(uuid, text, text) TO herald_app;

-- Per tenant, minute, function and route: what the invocations did. `latency_buckets`
-- counts invocations per latency bucket (bounds in shared/src/rollup.rs), enough for
-- p50/p95/p99 across every instance; sums add up under concurrent upserts.
CREATE TABLE perf_minutes (
    tenant_id       uuid             NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    minute          timestamptz      NOT NULL,
    function        text             NOT NULL CHECK (length(function) BETWEEN 1 AND 64),
    route           text             NOT NULL CHECK (length(route) BETWEEN 1 AND 200),
    requests        bigint           NOT NULL CHECK (requests >= 0),
    client_errors   bigint           NOT NULL CHECK (client_errors >= 0),
    server_errors   bigint           NOT NULL CHECK (server_errors >= 0),
    latency_ms      double precision NOT NULL,
    latency_max_ms  double precision NOT NULL,
    db_ms           double precision NOT NULL,
    queries         bigint           NOT NULL CHECK (queries >= 0),
    slow_queries    bigint           NOT NULL CHECK (slow_queries >= 0),
    latency_buckets bigint[]         NOT NULL,
    PRIMARY KEY (tenant_id, minute, function, route)
);

-- The latest slow statements, literals stripped; flushes keep at most a fixed number per
-- tenant.
CREATE TABLE slow_queries (
    tenant_id   uuid             NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id          bigint           GENERATED ALWAYS AS IDENTITY,
    at          timestamptz      NOT NULL,
    function    text             NOT NULL CHECK (length(function) BETWEEN 1 AND 64),
    route       text             NOT NULL CHECK (length(route) BETWEEN 1 AND 200),
    request_id  text             NOT NULL CHECK (length(request_id) <= 200),
    duration_ms double precision NOT NULL,
    statement   text             NOT NULL CHECK (length(statement) <= 4000),
    PRIMARY KEY (tenant_id, id)
);

-- Requests per tenant and minute, summed over every instance (the rate limit's shared
-- view). Instances add their local counts about once a second.
CREATE TABLE rate_minutes (
    tenant_id uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    minute    timestamptz NOT NULL,
    requests  bigint      NOT NULL CHECK (requests >= 0),
    PRIMARY KEY (tenant_id, minute)
);

ALTER TABLE perf_minutes ENABLE ROW LEVEL SECURITY;
ALTER TABLE perf_minutes FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON perf_minutes
    USING (tenant_id = (SELECT app.current_tenant_id()))
    WITH CHECK (tenant_id = (SELECT app.current_tenant_id()));

ALTER TABLE slow_queries ENABLE ROW LEVEL SECURITY;
ALTER TABLE slow_queries FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON slow_queries
    USING (tenant_id = (SELECT app.current_tenant_id()))
    WITH CHECK (tenant_id = (SELECT app.current_tenant_id()));

ALTER TABLE rate_minutes ENABLE ROW LEVEL SECURITY;
ALTER TABLE rate_minutes FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON rate_minutes
    USING (tenant_id = (SELECT app.current_tenant_id()))
    WITH CHECK (tenant_id = (SELECT app.current_tenant_id()));

GRANT SELECT, INSERT, UPDATE, DELETE ON perf_minutes TO herald_app;
GRANT SELECT, INSERT, DELETE ON slow_queries TO herald_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON rate_minutes TO herald_app;
