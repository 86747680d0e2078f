-- Wake-ups for workers, sent by the database itself so that every writer triggers them:
-- `dtp_task_available` after tasks are inserted (one per statement), and
-- `dtp_task_canceled` with the task id when a RUNNING task is canceled, so the process
-- running it stops the handler at once instead of at its next heartbeat.

CREATE FUNCTION notify_task_available() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('dtp_task_available', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER tasks_notify_available
    AFTER INSERT ON tasks
    FOR EACH STATEMENT EXECUTE FUNCTION notify_task_available();

CREATE FUNCTION notify_task_canceled() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('dtp_task_canceled', NEW.id::text);
    RETURN NULL;
END;
$$;

CREATE TRIGGER tasks_notify_canceled
    AFTER UPDATE OF status ON tasks
    FOR EACH ROW
    WHEN (OLD.status = 'RUNNING' AND NEW.status = 'CANCELED')
    EXECUTE FUNCTION notify_task_canceled();
