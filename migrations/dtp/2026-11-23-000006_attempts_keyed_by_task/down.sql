CREATE INDEX task_attempts_task ON task_attempts (task_id, started_at);
ALTER TABLE task_attempts DROP CONSTRAINT task_attempts_pkey;
ALTER TABLE task_attempts ADD CONSTRAINT task_attempts_pkey PRIMARY KEY (lease_token);
