-- A listing by type and status (`GET /tasks?type=demo&status=CANCELED`) walked the type's
-- index and filtered each row by status: a rare status of a common type read the type's
-- whole history. One index on (type, status, id) serves both that listing and, one arm per
-- status, the listing by type alone, so it replaces the type index rather than adding to
-- what every write maintains.
DROP INDEX tasks_type_id;
CREATE INDEX tasks_type_status_id ON tasks (task_type, status, id) WHERE status <> 'RUNNING';
