DROP INDEX web_tasks_tenant_type_id;
DROP INDEX web_tasks_tenant_status_id;
DROP INDEX web_tasks_tenant_id;
CREATE INDEX web_tasks_status_id ON web_tasks (status, id);
CREATE INDEX web_tasks_type_id ON web_tasks (task_type, id);
ALTER TABLE web_tasks DROP COLUMN tenant;
DROP TABLE api_keys;
DROP FUNCTION announce_api_key_change();
