-- The change feed: every change of a task's state is an event, written by the statement
-- that makes the change (triggers below), so the event commits or rolls back with it.
--
-- Positions: `xact` is the writing transaction's id, `position` a sequence. Both are drawn
-- before commit, so a later position can commit first; a reader that took `position > last`
-- would skip an event that commits late. Readers instead read only events of transactions
-- older than every transaction still running (`xact < xmin` of their snapshot): those are
-- final, and every event still to come has a larger `xact`. The feed is ordered by
-- `(xact, position)`. Two transactions that change one task do so one after the other, and
-- each write is guarded by the state it expects; a transaction that waited for another's row
-- lock finds the state changed and writes nothing, so one task's events keep their order.
CREATE SEQUENCE task_event_positions AS BIGINT;

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

-- What retention has deleted: every event at or before this position is gone, so a cursor
-- before it may have missed events (410 CURSOR_EXPIRED).
CREATE TABLE task_event_horizon (
    only_row  BOOLEAN PRIMARY KEY DEFAULT true CHECK (only_row),
    xact      BIGINT NOT NULL,
    position  BIGINT NOT NULL
);
INSERT INTO task_event_horizon (xact, position) VALUES (0, 0);

CREATE FUNCTION record_created_tasks() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO task_events (task_id, task_type, kind, status, retry_state, attempt, submitted_by, idempotency_key)
    SELECT n.id, n.task_type, 'CREATED', n.status, n.retry_state, n.attempt_count, n.idempotency_scope,
           n.idempotency_key
    FROM created n ORDER BY n.id;
    RETURN NULL;
END;
$$;

CREATE TRIGGER tasks_record_created
    AFTER INSERT ON tasks
    REFERENCING NEW TABLE AS created
    FOR EACH STATEMENT EXECUTE FUNCTION record_created_tasks();

-- Every write that changes a task's state sets its `updated_at` to the transaction's time
-- (heartbeats and queue moves do not), so the rows a statement changed are known from the
-- new rows alone, without the old ones beside them. The kind follows from the new state and,
-- for a task back to PENDING or FAILED, from how its latest attempt ended: `LOST`,
-- `RELEASED` (the attempt is not counted), or otherwise a failure.
CREATE FUNCTION record_task_changes() RETURNS trigger LANGUAGE plpgsql AS $$
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

CREATE TRIGGER tasks_record_changes
    AFTER UPDATE ON tasks
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION record_task_changes();
