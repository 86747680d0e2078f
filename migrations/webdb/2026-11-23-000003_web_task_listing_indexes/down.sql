DROP INDEX web_tasks_type_id;
DROP INDEX web_tasks_status_id;
