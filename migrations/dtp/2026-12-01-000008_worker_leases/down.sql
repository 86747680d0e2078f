ALTER TABLE tasks DROP COLUMN heartbeat_details;
ALTER TABLE task_attempts DROP COLUMN lease_secret_hash;
