//! Read-only queries for metrics and readiness, kept on partial indexes so that their
//! cost does not grow with finished history.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Double, Nullable, Text};

use super::tasks::{plan, PlanLine};

#[derive(QueryableByName, Debug)]
pub struct LiveTaskCount {
    #[diesel(sql_type = Text)]
    pub status: String,
    #[diesel(sql_type = Text)]
    pub task_type: String,
    #[diesel(sql_type = BigInt)]
    pub count: i64,
}

/// PENDING and RUNNING tasks by status and type. Pending tasks are counted in the two
/// queues' indexes, which hold every one of them between them.
const LIVE_TASKS: &str = "SELECT 'PENDING' AS status, task_type, count(*) AS count FROM ( \
         SELECT task_type FROM tasks WHERE status = 'PENDING' AND NOT type_queue \
         UNION ALL \
         SELECT task_type FROM tasks WHERE status = 'PENDING' AND type_queue \
     ) pending GROUP BY task_type \
     UNION ALL \
     SELECT 'RUNNING', task_type, count(*) FROM tasks WHERE status = 'RUNNING' GROUP BY task_type";

/// How long the oldest due PENDING task has waited; each queue's index answers for its own
/// tasks, and LEAST passes over a queue with none due.
const OLDEST_DUE_AGE: &str = "SELECT EXTRACT(EPOCH FROM now() - LEAST( \
         (SELECT min(scheduled_for) FROM tasks \
          WHERE status = 'PENDING' AND NOT type_queue AND scheduled_for <= now()), \
         (SELECT min(scheduled_for) FROM tasks \
          WHERE status = 'PENDING' AND type_queue AND scheduled_for <= now()) \
     ))::float8 AS seconds";

/// PENDING and RUNNING tasks by status and type.
pub fn count_live_tasks(conn: &mut PgConnection) -> QueryResult<Vec<LiveTaskCount>> {
    diesel::sql_query(LIVE_TASKS).load(conn)
}

#[derive(QueryableByName)]
struct Age {
    #[diesel(sql_type = Nullable<Double>)]
    seconds: Option<f64>,
}

/// Seconds the oldest due PENDING task has waited (0 when none is due).
pub fn oldest_due_pending_age(conn: &mut PgConnection) -> QueryResult<f64> {
    let age: Age = diesel::sql_query(OLDEST_DUE_AGE).get_result(conn)?;
    Ok(age.seconds.unwrap_or(0.0).max(0.0))
}

/// The plans of the metrics' queries, by name (for the plan checks).
pub fn explain_task_stats(conn: &mut PgConnection) -> QueryResult<Vec<(&'static str, String)>> {
    [
        ("count_live_tasks", LIVE_TASKS),
        ("oldest_due_pending_age", OLDEST_DUE_AGE),
    ]
    .into_iter()
    .map(|(name, sql)| {
        let lines: Vec<PlanLine> = diesel::sql_query(format!("EXPLAIN {sql}")).load(conn)?;
        Ok((name, plan(lines)))
    })
    .collect()
}
