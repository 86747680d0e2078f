//! Reads and writes behind the engine's back: assertions on the tables themselves, and
//! the states a crashed worker leaves behind, which no API call can produce.

use diesel::prelude::*;
use std::time::Duration;

use diesel::sql_types::{BigInt, Timestamptz};
use dtp_engine::domain::CLAIMED;
use dtp_engine::store::attempts::{self, AttemptRow};
use dtp_engine::store::schema::{task_attempts, tasks};
use dtp_engine::store::tasks::{claim_due_tasks, find_task, TaskRow};
use service_postgres::testing::TestDatabase;

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

/// Plays a worker that claimed the PENDING task `id` a minute ago and then vanished: the
/// task is RUNNING under `worker_id` with a lease expiring `lease_left_ms` from now
/// (negative: already expired), and its attempt row is open. The claim is the engine's own
/// statement; the task is made the first due for it, then its schedule is put back and its
/// clocks a minute earlier (an `updated_at` of the transaction's time would record a change).
pub fn claim_as_lost_worker(db: &TestDatabase, id: i64, worker_id: &str, lease_left_ms: i64) {
    let mut conn = db.connect();
    conn.transaction(|conn| {
        let scheduled_for = find_task(conn, id)?.expect("the task exists").scheduled_for;
        diesel::update(tasks::table.find(id))
            .set(tasks::scheduled_for.eq(diesel::dsl::sql::<Timestamptz>("'epoch'")))
            .execute(conn)?;
        let claimed = claim_due_tasks(conn, worker_id, 1, Duration::from_secs(60), CLAIMED)?;
        assert_eq!(
            claimed.iter().map(|c| c.id).collect::<Vec<_>>(),
            [id],
            "task {id} must be PENDING in the shared queue to be claimed"
        );
        diesel::sql_query(
            "WITH task AS ( \
                 UPDATE tasks SET scheduled_for = $2, processing_started_at = now() - interval '1 minute', \
                     updated_at = now() - interval '1 minute', lease_expires_at = now() + $3 * interval '1 millisecond' \
                 WHERE id = $1 RETURNING id, lease_token, processing_started_at \
             ) UPDATE task_attempts a SET started_at = task.processing_started_at, \
                 due_at = LEAST($2, task.processing_started_at) \
               FROM task WHERE a.lease_token = task.lease_token",
        )
        .bind::<BigInt, _>(id)
        .bind::<Timestamptz, _>(scheduled_for)
        .bind::<BigInt, _>(lease_left_ms)
        .execute(conn)?;
        diesel::QueryResult::Ok(())
    })
    .unwrap();
}
