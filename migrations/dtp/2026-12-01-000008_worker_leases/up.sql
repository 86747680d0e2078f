-- Workers outside the engine lease tasks of external types over HTTP. Their lease token
-- names the attempt (task and fencing token) and carries a random secret; the attempt keeps
-- the secret's SHA-256, so a token cannot be guessed from the attempt's key, and a stolen
-- copy of the table does not let anyone act on a lease. The task keeps the last heartbeat
-- details a worker sent, handed to its next attempt so a retry can resume from a checkpoint.
ALTER TABLE task_attempts ADD COLUMN lease_secret_hash BYTEA;
ALTER TABLE tasks ADD COLUMN heartbeat_details JSONB;
