ALTER TABLE task_attempts
    DROP CONSTRAINT task_attempts_due_before_start,
    DROP COLUMN due_at;
DROP INDEX tasks_type_id;
DROP INDEX tasks_status_id;
