-- The change feed keeps one row per statement (and per type and submitter within it) instead
-- of one per event: a claim or a completion of hundreds of tasks wrote hundreds of event rows
-- and key entries, which every drain paid for (bench/RESULTS.md). A group holds its events
-- in arrays of one length, one event at each index.
--
-- Positions stay as they were for readers: the event at index i (from 0) of a group sits at
-- `position + i`. New groups take `nextval * 65536` and hold at most 65,536 events (the trigger
-- splits a statement's tasks by `id / 65536`), so no two groups of one transaction overlap;
-- events carried over from `task_events` keep their own positions, one to a group. The feed's
-- order, `(xact, position)`, and every cursor already handed out keep their meaning.
CREATE TABLE task_event_groups (
    xact         BIGINT      NOT NULL DEFAULT (pg_current_xact_id()::text::bigint),
    position     BIGINT      NOT NULL,
    at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    task_type    TEXT        NOT NULL,
    -- Who submitted the tasks (their `idempotency_scope`, the service token's name): a
    -- submitter reads the events of its own tasks only.
    submitted_by TEXT        NOT NULL,
    events       INTEGER     NOT NULL CHECK (events BETWEEN 1 AND 65536),
    task_ids     BIGINT[]    NOT NULL,
    kinds        TEXT[]      NOT NULL,
    statuses     TEXT[]      NOT NULL,
    retry_states TEXT[]      NOT NULL,
    attempts     INTEGER[]   NOT NULL,
    -- The error of a failure, NULL for the other kinds.
    errors       TEXT[]      NOT NULL,
    -- The tasks' idempotency keys, so that a submitter knows its task by its own name from
    -- the first event on (TaskPilot's keys name the web task).
    idempotency_keys TEXT[]  NOT NULL,
    PRIMARY KEY (xact, position),
    CONSTRAINT task_event_groups_kinds_known CHECK (
        kinds <@ ARRAY['CREATED', 'STARTED', 'RETRY_SCHEDULED', 'SUCCEEDED', 'FAILED', 'CANCELED', 'LOST', 'RELEASED']
    )
);

-- A group of hundreds of events is stored compressed. lz4 compresses its arrays at a small
-- fraction of pglz's cost (bench/RESULTS.md); a server built without lz4 keeps pglz.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_settings WHERE name = 'default_toast_compression' AND 'lz4' = ANY (enumvals)) THEN
        ALTER TABLE task_event_groups
            ALTER COLUMN task_ids SET COMPRESSION lz4,
            ALTER COLUMN kinds SET COMPRESSION lz4,
            ALTER COLUMN statuses SET COMPRESSION lz4,
            ALTER COLUMN retry_states SET COMPRESSION lz4,
            ALTER COLUMN attempts SET COMPRESSION lz4,
            ALTER COLUMN errors SET COMPRESSION lz4,
            ALTER COLUMN idempotency_keys SET COMPRESSION lz4;
    END IF;
END;
$$;

INSERT INTO task_event_groups (xact, position, at, task_type, submitted_by, events, task_ids, kinds, statuses,
                               retry_states, attempts, errors, idempotency_keys)
SELECT xact, position, at, task_type, submitted_by, 1, ARRAY[task_id], ARRAY[kind], ARRAY[status],
       ARRAY[retry_state], ARRAY[attempt], ARRAY[error], ARRAY[idempotency_key]
FROM task_events;

DROP TABLE task_events;

-- One row per event, as the feed reads them (for people and tools looking at the database).
CREATE VIEW task_events AS
SELECT g.xact, g.position + e.ordinal - 1 AS position, e.task_id, g.task_type, e.kind, e.status, e.retry_state,
       e.attempt, g.at, e.error, g.submitted_by, e.idempotency_key
FROM task_event_groups g
CROSS JOIN LATERAL unnest(g.task_ids, g.kinds, g.statuses, g.retry_states, g.attempts, g.errors, g.idempotency_keys)
    WITH ORDINALITY AS e(task_id, kind, status, retry_state, attempt, error, idempotency_key, ordinal);

CREATE OR REPLACE FUNCTION record_created_tasks() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO task_event_groups (position, task_type, submitted_by, events, task_ids, kinds, statuses,
                                   retry_states, attempts, errors, idempotency_keys)
    SELECT nextval('task_event_positions') * 65536, n.task_type, n.idempotency_scope, count(*),
           array_agg(n.id), array_agg('CREATED'::text), array_agg(n.status), array_agg(n.retry_state),
           array_agg(n.attempt_count), array_agg(NULL::text), array_agg(n.idempotency_key)
    FROM (SELECT * FROM created ORDER BY id) n
    GROUP BY n.task_type, n.idempotency_scope, n.id / 65536;
    RETURN NULL;
END;
$$;

-- As before: every write that changes a task's state sets its `updated_at` to the
-- transaction's time (heartbeats and queue moves do not), so the rows a statement changed are
-- known from the new rows alone. The kind follows from the new state and, for a task back to
-- PENDING or FAILED, from how its latest attempt ended: `LOST`, `RELEASED` (the attempt is not
-- counted), or otherwise a failure.
CREATE OR REPLACE FUNCTION record_task_changes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO task_event_groups (position, task_type, submitted_by, events, task_ids, kinds, statuses,
                                   retry_states, attempts, errors, idempotency_keys)
    SELECT nextval('task_event_positions') * 65536, c.task_type, c.idempotency_scope, count(*),
           array_agg(c.id), array_agg(c.kind), array_agg(c.status), array_agg(c.retry_state),
           array_agg(c.attempt_count),
           array_agg(CASE WHEN c.kind IN ('RETRY_SCHEDULED', 'FAILED', 'LOST') THEN c.last_error END),
           array_agg(c.idempotency_key)
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
    ) c
    GROUP BY c.task_type, c.idempotency_scope, c.id / 65536;
    RETURN NULL;
END;
$$;
