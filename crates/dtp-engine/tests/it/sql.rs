//! Reads and writes behind the engine's back: assertions on the tables themselves, and
//! the states a crashed worker leaves behind, which no API call can produce.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use dtp_engine::store::attempts::{self, AttemptRow};
use dtp_engine::store::schema::{task_attempts, tasks};
use dtp_engine::store::tasks::{find_task, TaskRow};
use service_runtime::testing::TestDatabase;

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// The `n` a counting statement (`SELECT count(*) AS n ...`) answers.
pub fn count(conn: &mut PgConnection, sql: &str) -> i64 {
    diesel::sql_query(sql).get_result::<Count>(conn).unwrap().n
}

/// Rows in `tasks`.
pub fn count_tasks(db: &TestDatabase) -> i64 {
    tasks::table.count().get_result(&mut db.connect()).unwrap()
}

/// Rows in `tasks` with `status`.
pub fn count_tasks_in(db: &TestDatabase, status: &str) -> i64 {
    tasks::table
        .filter(tasks::status.eq(status))
        .count()
        .get_result(&mut db.connect())
        .unwrap()
}

/// One task's row, which must exist.
pub fn task_row(db: &TestDatabase, id: i64) -> TaskRow {
    find_task(&mut db.connect(), id).unwrap().unwrap()
}

/// One task's attempt rows, oldest first.
pub fn attempt_rows(db: &TestDatabase, task_id: i64) -> Vec<AttemptRow> {
    attempts::list_attempts(&mut db.connect(), task_id).unwrap()
}

/// Every attempt row of every task.
pub fn all_attempt_rows(db: &TestDatabase) -> Vec<AttemptRow> {
    task_attempts::table
        .select(AttemptRow::as_select())
        .load(&mut db.connect())
        .unwrap()
}

#[derive(QueryableByName)]
struct TypeQueue {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    type_queue: bool,
}

/// Whether task `id` waits in its type's own queue rather than the shared one.
pub fn in_type_queue(db: &TestDatabase, id: i64) -> bool {
    diesel::sql_query("SELECT type_queue FROM tasks WHERE id = $1")
        .bind::<BigInt, _>(id)
        .get_result::<TypeQueue>(&mut db.connect())
        .unwrap()
        .type_queue
}

/// Plays a worker that claimed the PENDING task `id` and then vanished: the task is
/// RUNNING under `worker_id` with a lease expiring `lease_left_ms` from now (negative:
/// already expired), and its attempt row is open.
pub fn claim_as_lost_worker(db: &TestDatabase, id: i64, worker_id: &str, lease_left_ms: i64) {
    let claimed = diesel::sql_query(
        "WITH claimed AS ( \
             UPDATE tasks SET status = 'RUNNING', attempt_count = attempt_count + 1, \
                 processing_started_at = now() - interval '1 minute', \
                 lease_token = nextval('task_lease_tokens'), \
                 lease_expires_at = now() + $3 * interval '1 millisecond', \
                 worker_id = $2, updated_at = now() \
             WHERE id = $1 AND status = 'PENDING' \
             RETURNING id, lease_token, attempt_count, worker_id, processing_started_at \
         ) INSERT INTO task_attempts (lease_token, task_id, attempt, worker_id, started_at) \
           SELECT lease_token, id, attempt_count, worker_id, processing_started_at FROM claimed",
    )
    .bind::<BigInt, _>(id)
    .bind::<Text, _>(worker_id)
    .bind::<BigInt, _>(lease_left_ms)
    .execute(&mut db.connect())
    .unwrap();
    assert_eq!(claimed, 1, "task {id} must be PENDING to be claimed");
}
