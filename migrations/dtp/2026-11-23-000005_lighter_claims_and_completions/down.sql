DROP INDEX tasks_type_id;
DROP INDEX tasks_status_id;
CREATE INDEX tasks_status_id ON tasks (status, id);
CREATE INDEX tasks_type_id ON tasks (task_type, id);

DROP TRIGGER tasks_delete_attempts ON tasks;
DROP FUNCTION delete_attempts_of_deleted_tasks();
DROP TRIGGER task_attempts_task_fixed ON task_attempts;
DROP FUNCTION forbid_attempt_task_change();
DROP TRIGGER task_attempts_task_exists ON task_attempts;
DROP FUNCTION check_attempts_name_tasks();

ALTER TABLE task_attempts
    ADD CONSTRAINT task_attempts_task_id_fkey FOREIGN KEY (task_id) REFERENCES tasks (id) ON DELETE CASCADE;
