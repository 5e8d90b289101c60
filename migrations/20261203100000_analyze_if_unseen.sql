-- Rows the statistics have never seen. A bulk write (an import, a bulk add to a group, a
-- campaign's messages) can put more rows under one tenant, group or campaign than the
-- statistics know of: the planner then expects a row or two, and the first page fetches
-- them all and sorts them instead of walking the list's index (a campaign's first batch
-- even scans the tenant's contacts once per member), until autovacuum analyses the table,
-- which on a large table waits for a tenth of it to change.
--
-- The writer calls this before it commits, with how many rows of the key it knows are
-- there. ANALYZE samples the transaction's own uncommitted rows too, and its statistics
-- commit with them.
--
-- Owned by the migration owner, which owns the tables: only a table's owner may analyse it.
-- Narrow: three tables, keys of the caller's own tenant, one static statement each.

-- Keys an analysis left unknown: when more keys are common than the statistics keep
-- (`default_statistics_target`), a rare key stays out of the sample's most common values
-- and is estimated at a row or two however often it is analysed. Noted here, for an hour,
-- so that its bulk writes stop paying for analyses in vain. No grants: the function's own.
CREATE TABLE app.unrepresented_keys (
    table_name text        NOT NULL,
    key        uuid        NOT NULL,
    noted_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (table_name, key)
);

-- How many rows the planner expects under one key: the tenant's live contacts, a group's
-- members, a campaign's messages. Only for app.analyze_if_unseen, which checked the key.
CREATE FUNCTION app.planned_rows(p_table text, p_key uuid) RETURNS float8
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, public
    AS $$
DECLARE
    v_plan json;
BEGIN
    IF p_table = 'contacts' THEN
        EXECUTE 'EXPLAIN (FORMAT JSON) SELECT 1 FROM contacts
                 WHERE tenant_id = $1 AND deleted_at IS NULL'
            INTO v_plan USING p_key;
    ELSIF p_table = 'group_contacts' THEN
        EXECUTE 'EXPLAIN (FORMAT JSON) SELECT 1 FROM group_contacts WHERE group_id = $1'
            INTO v_plan USING p_key;
    ELSE
        EXECUTE 'EXPLAIN (FORMAT JSON) SELECT 1 FROM messages WHERE campaign_id = $1'
            INTO v_plan USING p_key;
    END IF;
    RETURN (v_plan -> 0 -> 'Plan' ->> 'Plan Rows')::float8;
END
$$;

REVOKE ALL ON FUNCTION app.planned_rows(text, uuid) FROM PUBLIC;

CREATE FUNCTION app.analyze_if_unseen(p_table text, p_key uuid, p_rows bigint) RETURNS boolean
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, public
    AS $$
DECLARE
    v_tenant uuid := app.current_tenant_id();
    v_key uuid := coalesce(p_key, v_tenant);
BEGIN
    IF v_tenant IS NULL OR p_rows IS NULL OR p_rows < 1000 THEN
        RETURN false;
    END IF;
    IF EXISTS (SELECT 1 FROM app.unrepresented_keys
               WHERE table_name = p_table AND key = v_key AND noted_at > now() - interval '1 hour')
    THEN
        RETURN false;
    END IF;
    IF p_table = 'group_contacts' THEN
        IF NOT EXISTS (SELECT 1 FROM groups WHERE tenant_id = v_tenant AND id = p_key) THEN
            RETURN false;
        END IF;
    ELSIF p_table = 'messages' THEN
        IF NOT EXISTS (SELECT 1 FROM campaigns WHERE tenant_id = v_tenant AND id = p_key) THEN
            RETURN false;
        END IF;
    ELSIF p_table <> 'contacts' THEN
        RAISE EXCEPTION 'app.analyze_if_unseen does not analyse %', p_table
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- A key the statistics know is estimated in proportion to the table as it grows; one
    -- they have never seen, at a row or two.
    IF app.planned_rows(p_table, v_key) * 10 > p_rows THEN
        RETURN false;
    END IF;

    -- One analysis of a table at a time: when another transaction (this function's,
    -- autovacuum's, an operator's) holds its analyse lock, skip rather than queue behind it.
    BEGIN
        IF p_table = 'contacts' THEN
            LOCK TABLE contacts IN SHARE UPDATE EXCLUSIVE MODE NOWAIT;
        ELSIF p_table = 'group_contacts' THEN
            LOCK TABLE group_contacts IN SHARE UPDATE EXCLUSIVE MODE NOWAIT;
        ELSE
            LOCK TABLE messages IN SHARE UPDATE EXCLUSIVE MODE NOWAIT;
        END IF;
    EXCEPTION WHEN lock_not_available THEN
        RETURN false;
    END;
    IF p_table = 'contacts' THEN
        ANALYZE contacts;
    ELSIF p_table = 'group_contacts' THEN
        ANALYZE group_contacts;
    ELSE
        ANALYZE messages;
    END IF;
    IF app.planned_rows(p_table, v_key) * 10 <= p_rows THEN
        DELETE FROM app.unrepresented_keys WHERE noted_at <= now() - interval '1 hour';
        INSERT INTO app.unrepresented_keys (table_name, key) VALUES (p_table, v_key)
            ON CONFLICT (table_name, key) DO UPDATE SET noted_at = now();
    END IF;
    RETURN true;
END
$$;

REVOKE ALL ON FUNCTION app.analyze_if_unseen(text, uuid, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.analyze_if_unseen(text, uuid, bigint) TO herald_app;

-- A group belongs to one tenant, and so does a campaign: with the dependency recorded, the
-- lists' `tenant_id = … AND group_id = …` (or `campaign_id = …`) is estimated as the
-- group's rows alone, not shrunk once more by the tenant's share of the table.
CREATE STATISTICS group_contacts_group_tenant (dependencies)
    ON tenant_id, group_id FROM group_contacts;
CREATE STATISTICS messages_campaign_tenant (dependencies)
    ON tenant_id, campaign_id FROM messages;
