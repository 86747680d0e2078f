-- Secrets of this deployment, made at random by the first process that needs one and
-- shared by every process of the service (e.g. the key that seals listing cursors).
CREATE TABLE deployment_secrets (
    name text PRIMARY KEY,
    secret bytea NOT NULL CHECK (length(secret) = 32),
    created_at timestamptz NOT NULL DEFAULT now()
);
