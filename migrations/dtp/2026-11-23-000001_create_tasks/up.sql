-- Execution-plane tasks and their attempt history. Invariants of the state machine are
-- mirrored here as CHECK constraints so that no code path can write an impossible row.

CREATE SEQUENCE task_lease_tokens AS BIGINT;

CREATE TABLE tasks (
    id                     BIGSERIAL PRIMARY KEY,
    task_type              TEXT        NOT NULL,
    payload                JSONB       NOT NULL,
    status                 TEXT        NOT NULL DEFAULT 'PENDING',
    retry_state            TEXT        NOT NULL DEFAULT 'NONE',
    attempt_count          INTEGER     NOT NULL DEFAULT 0,
    max_attempts           INTEGER     NOT NULL,
    last_error             TEXT,
    idempotency_key        TEXT        UNIQUE,
    created_at             TIMESTAMPTZ NOT NULL DEFAULT now(),
    scheduled_for          TIMESTAMPTZ NOT NULL DEFAULT now(),
    processing_started_at  TIMESTAMPTZ,
    completed_at           TIMESTAMPTZ,
    updated_at             TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Fencing token of the attempt that currently holds the task; every write an
    -- attempt makes is guarded by it.
    lease_token            BIGINT,
    lease_expires_at       TIMESTAMPTZ,
    worker_id              TEXT,
    timeout_ms             INTEGER     NOT NULL,

    CONSTRAINT tasks_status_known CHECK (status IN ('PENDING', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELED')),
    CONSTRAINT tasks_retry_state_matches_status CHECK (
        (status IN ('PENDING', 'RUNNING') AND retry_state IN ('NONE', 'RETRY_SCHEDULED'))
        OR (status = 'SUCCEEDED' AND retry_state = 'COMPLETED')
        OR (status = 'FAILED' AND retry_state = 'EXHAUSTED')
        OR (status = 'CANCELED' AND retry_state = 'CANCELED')
    ),
    CONSTRAINT tasks_max_attempts_range CHECK (max_attempts BETWEEN 1 AND 100),
    CONSTRAINT tasks_attempts_within_max CHECK (attempt_count BETWEEN 0 AND max_attempts),
    CONSTRAINT tasks_terminal_iff_completed CHECK (
        (status IN ('SUCCEEDED', 'FAILED', 'CANCELED')) = (completed_at IS NOT NULL)
    ),
    CONSTRAINT tasks_running_iff_leased CHECK (
        (status = 'RUNNING') = (lease_token IS NOT NULL AND lease_expires_at IS NOT NULL AND worker_id IS NOT NULL)
    ),
    CONSTRAINT tasks_type_length CHECK (char_length(task_type) BETWEEN 1 AND 100),
    CONSTRAINT tasks_idempotency_key_length CHECK (char_length(idempotency_key) BETWEEN 1 AND 255),
    CONSTRAINT tasks_timeout_positive CHECK (timeout_ms > 0)
);

-- The claim path: only due PENDING rows are indexed, so finished history costs nothing.
CREATE INDEX tasks_pending_due ON tasks (scheduled_for, id) WHERE status = 'PENDING';
-- The rescuer's path: running rows by lease expiry.
CREATE INDEX tasks_running_lease ON tasks (lease_expires_at) WHERE status = 'RUNNING';

CREATE TABLE task_attempts (
    lease_token  BIGINT      PRIMARY KEY,
    task_id      BIGINT      NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    attempt      INTEGER     NOT NULL CHECK (attempt >= 1),
    worker_id    TEXT        NOT NULL,
    started_at   TIMESTAMPTZ NOT NULL,
    finished_at  TIMESTAMPTZ,
    outcome      TEXT,
    error        TEXT,

    CONSTRAINT task_attempts_outcome_known CHECK (
        outcome IN ('SUCCEEDED', 'FAILED', 'TIMED_OUT', 'CANCELED', 'LOST', 'RELEASED')
    ),
    CONSTRAINT task_attempts_finished_iff_outcome CHECK ((finished_at IS NULL) = (outcome IS NULL))
);

CREATE INDEX task_attempts_task ON task_attempts (task_id, started_at);
