DROP TRIGGER tasks_notify_canceled ON tasks;
DROP FUNCTION notify_task_canceled();
DROP TRIGGER tasks_notify_available ON tasks;
DROP FUNCTION notify_task_available();
