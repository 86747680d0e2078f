-- Listing tasks newest first (`GET /tasks`) by status or by type walks one of these
-- indexes backwards from the cursor instead of scanning the table.
CREATE INDEX tasks_status_id ON tasks (status, id);
CREATE INDEX tasks_type_id ON tasks (task_type, id);

-- When each attempt became due (the task's `scheduled_for` at its claim), so that its time
-- in the queue is known. Null for attempts recorded before this column existed.
ALTER TABLE task_attempts
    ADD COLUMN due_at TIMESTAMPTZ,
    ADD CONSTRAINT task_attempts_due_before_start CHECK (due_at <= started_at);
