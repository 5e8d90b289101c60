-- Herald's own work in a tenant (sender, dispatcher, webhook deliveries, rollups, rate
-- limits) enters it through one function, as requests do through app.enter_tenant: the
-- tenant is set for the transaction only, so a connection shared through a transaction-mode
-- pooler never carries it to another client.
CREATE FUNCTION app.enter_service(p_tenant uuid) RETURNS void
    LANGUAGE sql VOLATILE
    AS $$ SELECT set_config('app.tenant_id', p_tenant::text, true) $$;

REVOKE ALL ON FUNCTION app.enter_service(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.enter_service(uuid) TO herald_app;
