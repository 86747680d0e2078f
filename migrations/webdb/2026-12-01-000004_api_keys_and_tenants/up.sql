-- API keys: a caller presents `tp_<id>_<secret>`; only the secret's SHA-256 is kept. Every
-- change to a key is announced on `taskpilot_api_keys` (its id), so that every TaskPilot
-- process drops a revoked key from its cache at once.
CREATE TABLE api_keys (
    id            TEXT        PRIMARY KEY CHECK (id ~ '^[a-z0-9]{12}$'),
    tenant        TEXT        NOT NULL CHECK (tenant ~ '^[A-Za-z0-9._-]{1,100}$'),
    name          TEXT        NOT NULL DEFAULT '' CHECK (char_length(name) <= 100),
    scopes        TEXT[]      NOT NULL CHECK (
        cardinality(scopes) >= 1 AND scopes <@ ARRAY['tasks:read', 'tasks:write', 'admin']
    ),
    secret_hash   BYTEA       NOT NULL CHECK (octet_length(secret_hash) = 32),
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_used_at  TIMESTAMPTZ,
    expires_at    TIMESTAMPTZ,
    revoked_at    TIMESTAMPTZ
);
CREATE INDEX api_keys_tenant ON api_keys (tenant, created_at);

CREATE FUNCTION announce_api_key_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('taskpilot_api_keys', COALESCE(NEW.id, OLD.id));
    RETURN NULL;
END;
$$;

-- `last_used_at` alone changes nothing a cache holds.
CREATE TRIGGER api_keys_announce_change
    AFTER INSERT OR DELETE OR UPDATE OF tenant, scopes, secret_hash, expires_at, revoked_at ON api_keys
    FOR EACH ROW EXECUTE FUNCTION announce_api_key_change();

-- Every web task belongs to the tenant of the key that created it; everything a caller sees
-- is its tenant's. Listings walk one of these indexes, the tenant first.
ALTER TABLE web_tasks ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default';
DROP INDEX web_tasks_status_id;
DROP INDEX web_tasks_type_id;
CREATE INDEX web_tasks_tenant_id ON web_tasks (tenant, id);
CREATE INDEX web_tasks_tenant_status_id ON web_tasks (tenant, status, id);
CREATE INDEX web_tasks_tenant_type_id ON web_tasks (tenant, task_type, id);
