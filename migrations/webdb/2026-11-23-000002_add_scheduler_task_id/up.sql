-- The link from a web task to its execution-plane task. Set once, never changed:
-- a web task is bound to at most one scheduler task, and a scheduler task to one web task.
ALTER TABLE web_tasks
    ADD COLUMN scheduler_task_id BIGINT UNIQUE,
    ADD COLUMN scheduler_type    TEXT,
    ADD COLUMN bound_at          TIMESTAMPTZ,
    ADD CONSTRAINT web_tasks_binding_complete CHECK (
        (scheduler_task_id IS NULL) = (scheduler_type IS NULL)
        AND (scheduler_task_id IS NULL) = (bound_at IS NULL)
        AND (scheduler_task_id IS NULL) = (status = 'PENDING')
    );
