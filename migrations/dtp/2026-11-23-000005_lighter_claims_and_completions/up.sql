-- Claims and completions change a task's status, so each writes a new row version with an
-- entry in every index that covers it. Two costs there were not worth their price (drain
-- benchmark, 20,000 tasks: 22,000-29,000 tasks/s before this migration, 33,000-42,000 after):
--
-- 1. The foreign key from attempts to tasks ran a check query per attempt a claim opens, and
--    locked the task's new row version for it (one more WAL record per task). It is replaced
--    by one check per statement over all the attempts it inserts, a rule that an attempt's
--    task never changes, and a statement-level trigger that deletes a deleted task's attempts.
--    A concurrent delete cannot orphan an attempt a claim opens: the claim holds the task's
--    row lock until it commits.
-- 2. The listing indexes also indexed every RUNNING version. Running tasks are few (at most
--    the workers' slots) and the rescuer's index already holds them, so listings read them
--    from there and these indexes leave them out.

ALTER TABLE task_attempts DROP CONSTRAINT task_attempts_task_id_fkey;

CREATE FUNCTION check_attempts_name_tasks() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM opened o WHERE NOT EXISTS (SELECT 1 FROM tasks t WHERE t.id = o.task_id)) THEN
        RAISE EXCEPTION USING
            ERRCODE = 'foreign_key_violation',
            MESSAGE = 'an attempt names a task that does not exist',
            CONSTRAINT = 'task_attempts_task_exists';
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER task_attempts_task_exists
    AFTER INSERT ON task_attempts
    REFERENCING NEW TABLE AS opened
    FOR EACH STATEMENT EXECUTE FUNCTION check_attempts_name_tasks();

CREATE FUNCTION forbid_attempt_task_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING
        ERRCODE = 'foreign_key_violation',
        MESSAGE = 'an attempt cannot move to another task',
        CONSTRAINT = 'task_attempts_task_exists';
END;
$$;

CREATE TRIGGER task_attempts_task_fixed
    BEFORE UPDATE OF task_id ON task_attempts
    FOR EACH ROW WHEN (OLD.task_id IS DISTINCT FROM NEW.task_id)
    EXECUTE FUNCTION forbid_attempt_task_change();

CREATE FUNCTION delete_attempts_of_deleted_tasks() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM task_attempts a USING deleted d WHERE a.task_id = d.id;
    RETURN NULL;
END;
$$;

CREATE TRIGGER tasks_delete_attempts
    AFTER DELETE ON tasks
    REFERENCING OLD TABLE AS deleted
    FOR EACH STATEMENT EXECUTE FUNCTION delete_attempts_of_deleted_tasks();

DROP INDEX tasks_status_id;
DROP INDEX tasks_type_id;
CREATE INDEX tasks_status_id ON tasks (status, id) WHERE status <> 'RUNNING';
CREATE INDEX tasks_type_id ON tasks (task_type, id) WHERE status <> 'RUNNING';
