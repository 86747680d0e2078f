DROP INDEX tasks_type_status_id;
CREATE INDEX tasks_type_id ON tasks (task_type, id) WHERE status <> 'RUNNING';
