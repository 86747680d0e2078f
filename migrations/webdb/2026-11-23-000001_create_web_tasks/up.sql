-- The user-facing task record owned by TaskPilot.
CREATE TABLE web_tasks (
    id          BIGSERIAL   PRIMARY KEY,
    task_type   TEXT        NOT NULL CHECK (char_length(task_type) BETWEEN 1 AND 100),
    payload     JSONB       NOT NULL,
    status      TEXT        NOT NULL DEFAULT 'PENDING' CHECK (status IN ('PENDING', 'SUBMITTED')),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
