-- Task types of the operator's own (HTTP targets, workers outside the engine, handlers with
-- a concurrency limit) need three things of the table:
--
-- 1. `result`: what a task produced when it SUCCEEDED (at most 64 KiB, checked before the write).
-- 2. `NOT_RETRYABLE`: a FAILED task whose last attempt failed in a way no retry mends.
-- 3. `type_queue`: whether the task waits in its type's own queue rather than the shared one.
--    The engine's claim takes tasks from the shared queue only. A type with a concurrency
--    limit is claimed type by type under a lock that counts its running attempts, and an
--    external type is leased by workers, never claimed by the engine. Keeping those tasks out
--    of the shared queue's index means a backlog of them costs the shared claim nothing.
--    The submitting engine sets it from the type's settings; an engine starting with other
--    settings moves the pending tasks of its types to the queue they now belong to.

ALTER TABLE tasks
    ADD COLUMN result JSONB,
    ADD COLUMN type_queue BOOLEAN NOT NULL DEFAULT false;

ALTER TABLE tasks DROP CONSTRAINT tasks_retry_state_matches_status;
ALTER TABLE tasks ADD CONSTRAINT tasks_retry_state_matches_status CHECK (
    (status IN ('PENDING', 'RUNNING') AND retry_state IN ('NONE', 'RETRY_SCHEDULED'))
    OR (status = 'SUCCEEDED' AND retry_state = 'COMPLETED')
    OR (status = 'FAILED' AND retry_state IN ('EXHAUSTED', 'NOT_RETRYABLE'))
    OR (status = 'CANCELED' AND retry_state = 'CANCELED')
);
ALTER TABLE tasks ADD CONSTRAINT tasks_result_only_when_succeeded CHECK (result IS NULL OR status = 'SUCCEEDED');

DROP INDEX tasks_pending_due;
CREATE INDEX tasks_pending_due ON tasks (scheduled_for, id) WHERE status = 'PENDING' AND NOT type_queue;
CREATE INDEX tasks_pending_by_type ON tasks (task_type, scheduled_for, id) WHERE status = 'PENDING' AND type_queue;
