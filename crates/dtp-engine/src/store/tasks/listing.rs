//! `GET /tasks`: pages of tasks newest first, filtered by status and type. The listing
//! index, (task_type, status, id), leaves RUNNING rows out (claims and completions then
//! write fewer index entries), so running tasks are read through the rescuer's index and
//! joined in where a filter needs them; a status across types merges each type's range.

use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use diesel::sql_types::{BigInt, Text};
use dtp_contract::TaskStatus;

use super::plans::Planning;
use super::{TaskRow, TASK_ROW_COLUMNS};

/// Which tasks a listing returns: all filters are optional and combine with AND.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskFilter {
    pub status: Option<TaskStatus>,
    pub task_type: Option<String>,
    /// Only tasks with a smaller id (the last id of the previous page).
    pub before_id: Option<i64>,
}

/// Up to `limit` tasks matching `filter`, newest (highest id) first.
pub fn list_tasks(conn: &mut PgConnection, filter: &TaskFilter, limit: i64) -> QueryResult<Vec<TaskRow>> {
    listing_statement(Planning::Run, filter, limit).load(conn)
}

/// The task types that have rows in the listing index, found by skipping from one type to
/// the next along its leading column: one index descent a type, however many rows each
/// has. A common table expression for `WITH RECURSIVE`; its last row is NULL. It walks from
/// the high end, where each type's newest finished rows are: the cleaner deletes from the
/// low end, and the entries it leaves until a vacuum would be stepped over from there.
pub(super) const LISTED_TYPES: &str = "listed_types(task_type) AS ( \
        (SELECT task_type FROM tasks WHERE status <> 'RUNNING' ORDER BY task_type DESC LIMIT 1) \
        UNION ALL \
        SELECT (SELECT t.task_type FROM tasks t \
                WHERE t.status <> 'RUNNING' AND t.task_type < l.task_type \
                ORDER BY t.task_type DESC LIMIT 1) \
        FROM listed_types l WHERE l.task_type IS NOT NULL)";

/// Which rows one arm of a listing reads, each named by conditions that match one partial
/// index's predicate word for word, so that the index is used whatever the plan's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rows {
    All,
    /// From the rescuer's index of running tasks.
    Running,
    /// Rows of the filtered type in a status other than RUNNING, from the listing index.
    InStatus(TaskStatus),
    /// Rows of every type in a status other than RUNNING: each type's range of the listing
    /// index, merged.
    InStatusOfEveryType(TaskStatus),
}

impl Rows {
    /// The arm's statement; `filters` are the conditions every arm adds.
    fn arm(self, filters: &str) -> String {
        // A status name from the closed set, never client text.
        let in_status =
            |status: TaskStatus| format!("status <> 'RUNNING' AND status = '{}'", status.as_str());
        let newest = |condition: &str| {
            format!("SELECT * FROM tasks WHERE {condition} AND id < $1{filters} ORDER BY id DESC LIMIT $2")
        };
        match self {
            Rows::All => format!("({})", newest("TRUE")),
            Rows::Running => format!("({})", newest("status = 'RUNNING'")),
            Rows::InStatus(status) => format!("({})", newest(&in_status(status))),
            Rows::InStatusOfEveryType(status) => format!(
                "(WITH RECURSIVE {LISTED_TYPES} SELECT page.* FROM listed_types CROSS JOIN LATERAL ({}) page)",
                newest(&format!("{} AND task_type = listed_types.task_type", in_status(status)))
            ),
        }
    }
}

pub(super) fn listing_statement(
    planning: Planning,
    filter: &TaskFilter,
    limit: i64,
) -> BoxedSqlQuery<'static, Pg, SqlQuery> {
    // $1 the cursor, $2 the page size, then the type where it filters.
    let filters = if filter.task_type.is_some() {
        " AND task_type = $3"
    } else {
        ""
    };
    let arms: Vec<Rows> = match filter.status {
        Some(TaskStatus::Running) => vec![Rows::Running],
        Some(status) if filter.task_type.is_some() => vec![Rows::InStatus(status)],
        Some(status) => vec![Rows::InStatusOfEveryType(status)],
        // Every status of one type: one arm per status, each an index range of its own, so
        // that neither a busy status nor a rare one makes the others wait.
        None if filter.task_type.is_some() => TaskStatus::ALL
            .into_iter()
            .map(|status| match status {
                TaskStatus::Running => Rows::Running,
                other => Rows::InStatus(other),
            })
            .collect(),
        None => vec![Rows::All],
    };
    let arms = arms
        .iter()
        .map(|rows| rows.arm(filters))
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    let mut statement = planning
        .statement(&format!(
            "SELECT {TASK_ROW_COLUMNS} FROM ({arms}) page ORDER BY id DESC LIMIT $2"
        ))
        .bind::<BigInt, _>(filter.before_id.unwrap_or(i64::MAX))
        .bind::<BigInt, _>(limit);
    if let Some(task_type) = &filter.task_type {
        statement = statement.bind::<Text, _>(task_type.clone());
    }
    statement
}
