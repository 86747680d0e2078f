-- TaskPilot's mirror of execution state, kept from DTP's change feed by the execution
-- follower. It is keyed by the scheduler task, not the web task: an event can arrive before
-- the bind that links the two has committed, and the bind and the follower then each write
-- their part of one row (the bind the link, the follower the state) without losing either.
CREATE TABLE task_executions (
    scheduler_task_id BIGINT      PRIMARY KEY,
    -- Set by the follower from the task's idempotency key (which names the web task), or by
    -- the bind, whichever writes first. One web task has one scheduler task (its key), so no
    -- constraint is needed to keep them one to one, and none is kept: a foreign key's check
    -- would lock the web task's row while the bind, which holds it, waits for this row (a
    -- deadlock), and a unique index would turn the follower's and the bind's concurrent first
    -- writes of one row into a conflict outside the one their upserts resolve.
    web_task_id       BIGINT,
    tenant            TEXT,
    status            TEXT        NOT NULL CHECK (status IN ('PENDING', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELED')),
    retry_state       TEXT        NOT NULL,
    attempt_count     INTEGER     NOT NULL,
    max_attempts      INTEGER,
    last_error        TEXT,
    created_at        TIMESTAMPTZ,
    started_at        TIMESTAMPTZ,
    completed_at      TIMESTAMPTZ,
    synced_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT task_executions_linked CHECK ((web_task_id IS NULL) = (tenant IS NULL))
);
-- `GET /api/tasks?executionStatus=` walks this, the tenant first, newest web task first.
CREATE INDEX task_executions_listing ON task_executions (tenant, status, web_task_id)
    WHERE web_task_id IS NOT NULL;

-- Each event the follower applied, in the order it applied them (`seq`), for the event
-- streams and a task's history. `cursor` is the feed's own, unique per event.
CREATE TABLE execution_events (
    seq               BIGSERIAL   PRIMARY KEY,
    cursor            TEXT        NOT NULL UNIQUE,
    scheduler_task_id BIGINT      NOT NULL,
    kind              TEXT        NOT NULL,
    status            TEXT        NOT NULL,
    retry_state       TEXT        NOT NULL,
    attempt           INTEGER     NOT NULL,
    at                TIMESTAMPTZ NOT NULL,
    error             TEXT,
    -- When TaskPilot wrote it: `applied_at - at` is how far the mirror lags behind.
    applied_at        TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX execution_events_task ON execution_events (scheduler_task_id, seq);

-- Where the follower is in each feed it follows, written in the same transaction as what
-- it applied.
CREATE TABLE feed_positions (
    feed        TEXT        PRIMARY KEY,
    cursor      TEXT        NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Every batch the follower applies is announced, so that each TaskPilot process's event
-- streams read on at once.
CREATE FUNCTION announce_execution_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('taskpilot_execution_events', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER execution_events_announce
    AFTER INSERT ON execution_events
    FOR EACH STATEMENT EXECUTE FUNCTION announce_execution_events();
