ALTER TABLE web_tasks
    DROP CONSTRAINT web_tasks_binding_complete,
    DROP COLUMN bound_at,
    DROP COLUMN scheduler_type,
    DROP COLUMN scheduler_task_id;
