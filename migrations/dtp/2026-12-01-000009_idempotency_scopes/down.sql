DROP INDEX tasks_idempotency_key;
CREATE UNIQUE INDEX tasks_idempotency_key ON tasks (idempotency_key) WHERE idempotency_key IS NOT NULL;
ALTER TABLE tasks DROP COLUMN requested_run_at, DROP COLUMN idempotency_scope;
