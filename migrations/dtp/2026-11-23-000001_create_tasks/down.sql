DROP TABLE task_attempts;
DROP TABLE tasks;
DROP SEQUENCE task_lease_tokens;
