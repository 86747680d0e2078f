//! Read-only queries for metrics and readiness, kept on partial indexes so that their
//! cost does not grow with finished history.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Double, Nullable, Text};

#[derive(QueryableByName, Debug)]
pub struct LiveTaskCount {
    #[diesel(sql_type = Text)]
    pub status: String,
    #[diesel(sql_type = Text)]
    pub task_type: String,
    #[diesel(sql_type = BigInt)]
    pub count: i64,
}

/// PENDING and RUNNING tasks by status and type.
pub fn count_live_tasks(conn: &mut PgConnection) -> QueryResult<Vec<LiveTaskCount>> {
    diesel::sql_query(
        "SELECT 'PENDING' AS status, task_type, count(*) AS count FROM tasks WHERE status = 'PENDING' GROUP BY task_type \
         UNION ALL \
         SELECT 'RUNNING', task_type, count(*) FROM tasks WHERE status = 'RUNNING' GROUP BY task_type",
    )
    .load(conn)
}

#[derive(QueryableByName)]
struct Age {
    #[diesel(sql_type = Nullable<Double>)]
    seconds: Option<f64>,
}

/// Seconds the oldest due PENDING task has waited (0 when none is due).
pub fn oldest_due_pending_age(conn: &mut PgConnection) -> QueryResult<f64> {
    let age: Age = diesel::sql_query(
        "SELECT EXTRACT(EPOCH FROM now() - min(scheduled_for))::float8 AS seconds \
         FROM tasks WHERE status = 'PENDING' AND scheduled_for <= now()",
    )
    .get_result(conn)?;
    Ok(age.seconds.unwrap_or(0.0).max(0.0))
}
