-- app.enter_tenant without the tenant's rate limit: processes cache the limit and refresh it
-- with their once-a-second rate-limit sync (shared/src/ratelimit.rs), and read it from
-- `tenants` themselves only for a tenant they have not seen lately. The lookup on every
-- request was about 3 % of PostgreSQL's work for a contact list.
--
-- set_config is called through plpgsql assignments, which plpgsql evaluates as simple
-- expressions, rather than PERFORM, which starts the executor for each.
DROP FUNCTION app.enter_tenant(uuid, text, text);

-- Sets the transaction's tenant, and its application_name to `req=<request id> <name>` when
-- a request id is given (see 20261125200000_observability.sql); returns the caller's role
-- in the tenant, NULL when `p_sub` is not a member. The membership read runs under the
-- policy the first line has just selected.
CREATE FUNCTION app.enter_tenant(p_tenant uuid, p_sub text, p_request text) RETURNS text
    LANGUAGE plpgsql VOLATILE
    AS $$
DECLARE
    ignored text;
BEGIN
    ignored := set_config('app.tenant_id', p_tenant::text, true);
    IF p_request <> '' THEN
        ignored := set_config('application_name',
            left('req=' || p_request || ' ' || current_setting('application_name'), 63), true);
    END IF;
    RETURN (SELECT m.role FROM tenant_members m WHERE m.tenant_id = p_tenant AND m.sub = p_sub);
END
$$;

REVOKE ALL ON FUNCTION app.enter_tenant(uuid, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.enter_tenant(uuid, text, text) TO herald_app;
