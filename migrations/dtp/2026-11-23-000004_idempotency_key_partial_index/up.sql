-- Most tasks carry no idempotency key. A full unique index still gets an entry for each
-- of them on every insert and on every non-HOT update (claim, completion); a partial one
-- indexes keyed tasks only, and enforces the same uniqueness.
CREATE UNIQUE INDEX tasks_idempotency_key ON tasks (idempotency_key) WHERE idempotency_key IS NOT NULL;
ALTER TABLE tasks DROP CONSTRAINT tasks_idempotency_key_key;
