DROP INDEX tasks_pending_by_type;
DROP INDEX tasks_pending_due;
CREATE INDEX tasks_pending_due ON tasks (scheduled_for, id) WHERE status = 'PENDING';
ALTER TABLE tasks DROP CONSTRAINT tasks_result_only_when_succeeded;
ALTER TABLE tasks DROP CONSTRAINT tasks_retry_state_matches_status;
UPDATE tasks SET retry_state = 'EXHAUSTED' WHERE retry_state = 'NOT_RETRYABLE';
ALTER TABLE tasks ADD CONSTRAINT tasks_retry_state_matches_status CHECK (
    (status IN ('PENDING', 'RUNNING') AND retry_state IN ('NONE', 'RETRY_SCHEDULED'))
    OR (status = 'SUCCEEDED' AND retry_state = 'COMPLETED')
    OR (status = 'FAILED' AND retry_state = 'EXHAUSTED')
    OR (status = 'CANCELED' AND retry_state = 'CANCELED')
);
ALTER TABLE tasks DROP COLUMN type_queue, DROP COLUMN result;
