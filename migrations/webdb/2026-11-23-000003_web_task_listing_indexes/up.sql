-- Listing web tasks newest first (`GET /api/tasks`) by status or by type walks one of
-- these indexes backwards from the cursor instead of scanning the table. `bound` is
-- answered from the status index: a web task is bound exactly when it is SUBMITTED.
CREATE INDEX web_tasks_status_id ON web_tasks (status, id);
CREATE INDEX web_tasks_type_id ON web_tasks (task_type, id);
