-- An idempotency key belongs to the caller that submitted it (its service token's name):
-- one caller's keys can never collide with, block or hijack another's. A repeated key must
-- ask for the same task in every field, so the `runAt` a task was submitted with is kept
-- (its `scheduled_for` moves with retries, and a `runAt` in the past is stored as now).
ALTER TABLE tasks
    ADD COLUMN idempotency_scope TEXT NOT NULL DEFAULT '',
    ADD COLUMN requested_run_at TIMESTAMPTZ;
DROP INDEX tasks_idempotency_key;
CREATE UNIQUE INDEX tasks_idempotency_key ON tasks (idempotency_scope, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
