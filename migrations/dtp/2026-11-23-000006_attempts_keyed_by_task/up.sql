-- Every attempt a claim opens wrote two index entries: its lease token (the primary key) and
-- its task (for the task's attempt history). One key on (task, lease token) serves both the
-- history and the writes that close an attempt, which always know its task. Lease tokens stay
-- unique because only the `task_lease_tokens` sequence hands them out.
ALTER TABLE task_attempts DROP CONSTRAINT task_attempts_pkey;
ALTER TABLE task_attempts ADD CONSTRAINT task_attempts_pkey PRIMARY KEY (task_id, lease_token);
DROP INDEX task_attempts_task;
