//! Queries on `task_attempts`, the history of every attempt of every task. Rows are
//! opened by the claim and closed by the write that ends the attempt (see `tasks`).

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use super::schema::task_attempts;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = task_attempts)]
#[diesel(check_for_backend(diesel::pg::Pg))]
pub struct AttemptRow {
    pub lease_token: i64,
    pub task_id: i64,
    pub attempt: i32,
    pub worker_id: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub outcome: Option<String>,
    pub error: Option<String>,
    /// When the task became due for this attempt; null for rows older than the column.
    pub due_at: Option<DateTime<Utc>>,
}

/// Every attempt of one task, oldest first.
pub fn list_attempts(conn: &mut PgConnection, task_id: i64) -> QueryResult<Vec<AttemptRow>> {
    task_attempts::table
        .filter(task_attempts::task_id.eq(task_id))
        .order((task_attempts::started_at.asc(), task_attempts::lease_token.asc()))
        .select(AttemptRow::as_select())
        .load(conn)
}
