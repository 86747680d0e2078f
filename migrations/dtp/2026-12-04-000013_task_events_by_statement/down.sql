DROP VIEW task_events;

CREATE TABLE task_events (
    xact       BIGINT      NOT NULL DEFAULT (pg_current_xact_id()::text::bigint),
    position   BIGINT      NOT NULL DEFAULT nextval('task_event_positions'),
    task_id    BIGINT      NOT NULL,
    task_type  TEXT        NOT NULL,
    kind       TEXT        NOT NULL,
    status     TEXT        NOT NULL,
    retry_state TEXT       NOT NULL,
    attempt    INTEGER     NOT NULL,
    at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    error      TEXT,
    -- Who submitted the task (its `idempotency_scope`, the service token's name): a
    -- submitter reads the events of its own tasks only.
    submitted_by TEXT      NOT NULL,
    -- The task's idempotency key, so that a submitter knows its task by its own name from
    -- the first event on (TaskPilot's keys name the web task).
    idempotency_key TEXT,
    PRIMARY KEY (xact, position),
    CONSTRAINT task_events_kind_known CHECK (
        kind IN ('CREATED', 'STARTED', 'RETRY_SCHEDULED', 'SUCCEEDED', 'FAILED', 'CANCELED', 'LOST', 'RELEASED')
    )
);

INSERT INTO task_events (xact, position, task_id, task_type, kind, status, retry_state, attempt, at, error,
                         submitted_by, idempotency_key)
SELECT g.xact, g.position + e.ordinal - 1, e.task_id, g.task_type, e.kind, e.status, e.retry_state, e.attempt,
       g.at, e.error, g.submitted_by, e.idempotency_key
FROM task_event_groups g
CROSS JOIN LATERAL unnest(g.task_ids, g.kinds, g.statuses, g.retry_states, g.attempts, g.errors, g.idempotency_keys)
    WITH ORDINALITY AS e(task_id, kind, status, retry_state, attempt, error, idempotency_key, ordinal);

DROP TABLE task_event_groups;

CREATE OR REPLACE FUNCTION record_created_tasks() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO task_events (task_id, task_type, kind, status, retry_state, attempt, submitted_by, idempotency_key)
    SELECT n.id, n.task_type, 'CREATED', n.status, n.retry_state, n.attempt_count, n.idempotency_scope,
           n.idempotency_key
    FROM created n ORDER BY n.id;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION record_task_changes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO task_events (task_id, task_type, kind, status, retry_state, attempt, error, submitted_by,
                             idempotency_key)
    SELECT c.id, c.task_type, c.kind, c.status, c.retry_state, c.attempt_count,
           CASE WHEN c.kind IN ('RETRY_SCHEDULED', 'FAILED', 'LOST') THEN c.last_error END, c.idempotency_scope,
           c.idempotency_key
    FROM (
        SELECT n.id, n.task_type, n.status, n.retry_state, n.attempt_count, n.last_error, n.idempotency_scope,
               n.idempotency_key,
            CASE
                WHEN n.status = 'RUNNING' THEN 'STARTED'
                WHEN n.status IN ('SUCCEEDED', 'CANCELED') THEN n.status
                ELSE COALESCE((
                    SELECT CASE a.outcome WHEN 'LOST' THEN 'LOST' WHEN 'RELEASED' THEN 'RELEASED' END
                    FROM task_attempts a WHERE a.task_id = n.id
                    ORDER BY a.lease_token DESC LIMIT 1
                ), CASE WHEN n.status = 'FAILED' THEN 'FAILED' ELSE 'RETRY_SCHEDULED' END)
            END AS kind
        FROM changed n
        WHERE n.updated_at = now()
        ORDER BY n.id
    ) c;
    RETURN NULL;
END;
$$;
