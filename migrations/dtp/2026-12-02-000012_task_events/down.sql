DROP TRIGGER tasks_record_changes ON tasks;
DROP TRIGGER tasks_record_created ON tasks;
DROP FUNCTION record_task_changes();
DROP FUNCTION record_created_tasks();
DROP TABLE task_event_horizon;
DROP TABLE task_events;
DROP SEQUENCE task_event_positions;
