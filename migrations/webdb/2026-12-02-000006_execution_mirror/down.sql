DROP TRIGGER execution_events_announce ON execution_events;
DROP FUNCTION announce_execution_events();
DROP TABLE feed_positions;
DROP TABLE execution_events;
DROP TABLE task_executions;
