CREATE INDEX tasks_status_id ON tasks (status, id) WHERE status <> 'RUNNING';
