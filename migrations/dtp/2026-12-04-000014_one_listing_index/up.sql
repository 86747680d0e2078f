-- Every PENDING and every finished task took an entry in two listing indexes, (status, id)
-- and (task_type, status, id). The second serves what the first did: a listing or cleanup
-- by status alone reads each type's range of it and merges them (the types found by a
-- skip over its leading column), so the first goes, and every insert and every finish
-- writes one index entry fewer.
DROP INDEX tasks_status_id;
