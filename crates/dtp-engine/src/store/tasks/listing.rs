//! `GET /tasks`: pages of tasks newest first, filtered by status and type. The listing
//! indexes leave RUNNING rows out (claims and completions then write fewer index entries),
//! so running tasks are read through the rescuer's index and joined in where a filter needs them.

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

/// Which rows a listing reads, each named by conditions that match one partial index's
/// predicate word for word, so that the index is used whatever the plan's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rows {
    All,
    Running,
    NotRunning,
}

impl Rows {
    fn condition(self) -> &'static str {
        match self {
            Rows::All => "TRUE",
            Rows::Running => "status = 'RUNNING'",
            Rows::NotRunning => "status <> 'RUNNING'",
        }
    }
}

pub(super) fn listing_statement(
    planning: Planning,
    filter: &TaskFilter,
    limit: i64,
) -> BoxedSqlQuery<'static, Pg, SqlQuery> {
    // $1 the cursor, $2 the page size, then the type and the status where they filter.
    let mut filters = String::new();
    if filter.task_type.is_some() {
        filters.push_str(" AND task_type = $3");
    }
    let (arms, status): (&[Rows], Option<&'static str>) = match filter.status {
        Some(TaskStatus::Running) => (&[Rows::Running], None),
        Some(status) => (&[Rows::NotRunning], Some(status.as_str())),
        // Every status of one type: the type index holds all but the running ones.
        None if filter.task_type.is_some() => (&[Rows::NotRunning, Rows::Running], None),
        None => (&[Rows::All], None),
    };
    if status.is_some() {
        let parameter = if filter.task_type.is_some() { 4 } else { 3 };
        filters.push_str(&format!(" AND status = ${parameter}"));
    }
    let arms = arms
        .iter()
        .map(|rows| {
            format!(
                "(SELECT * FROM tasks WHERE {} AND id < $1{filters} ORDER BY id DESC LIMIT $2)",
                rows.condition()
            )
        })
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
    match status {
        Some(status) => statement.bind::<Text, _>(status),
        None => statement,
    }
}
