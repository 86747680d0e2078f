//! The statements on `web_tasks`. The binding is written once, guarded by "still unbound",
//! so concurrent binds of one web task cannot both win; the bind also links the mirrored
//! execution, and reads return each web task with it. Reads, creates and binds take many web
//! tasks in one statement, for the groups `WebTasks` forms.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Jsonb, Text};
use dtp_contract::TaskStatus;
use service_postgres::group_commit::rows_in_order_of;
use service_postgres::prepared::Prepared;

use crate::domain::binding::Binding;
use crate::domain::{ExecutionRecord, NewWebTask, WebTaskStatus};
use crate::store::schema::{task_executions, web_tasks};
use crate::store::task_executions::{bind_link_columns, ExecutionRow, LINK_BOUND_SQL};
use crate::store::StoreError;

#[derive(Debug, Clone, Queryable, QueryableByName, Selectable)]
#[diesel(table_name = web_tasks)]
#[diesel(check_for_backend(diesel::pg::Pg))]
pub struct WebTaskRow {
    pub id: i64,
    pub task_type: String,
    pub payload: serde_json::Value,
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub scheduler_task_id: Option<i64>,
    pub scheduler_type: Option<String>,
    pub tenant: String,
}

impl WebTaskRow {
    pub fn status(&self) -> Result<WebTaskStatus, StoreError> {
        WebTaskStatus::parse(&self.status).ok_or_else(|| {
            StoreError::CorruptRow(format!("web task {} has status {:?}", self.id, self.status))
        })
    }

    pub fn binding(&self) -> Option<Binding> {
        Some(Binding {
            scheduler_task_id: self.scheduler_task_id?,
            scheduler_type: self.scheduler_type.clone()?,
        })
    }
}

/// What a bind wrote: the columns that changed. A bind knows the rest of the row, payload
/// included, so the statement sends none of it back.
#[derive(Debug, Clone, QueryableByName)]
#[diesel(table_name = web_tasks)]
#[diesel(check_for_backend(diesel::pg::Pg))]
pub struct BindingWritten {
    pub id: i64,
    pub status: String,
    pub updated_at: DateTime<Utc>,
    pub scheduler_task_id: Option<i64>,
    pub scheduler_type: Option<String>,
}

impl WebTaskRow {
    /// The row as it is once `written` is applied.
    pub fn with_binding(self, written: BindingWritten) -> Self {
        Self {
            status: written.status,
            updated_at: written.updated_at,
            scheduler_task_id: written.scheduler_task_id,
            scheduler_type: written.scheduler_type,
            ..self
        }
    }
}

/// `WebTaskRow`'s columns with the payload left out (a null in its place): an insert has
/// the payloads it wrote, and sending megabytes back only to parse them again costs memory.
/// Named, because a kept prepared statement must not change its result's shape when a later
/// migration adds a column, as `RETURNING *` would.
const WEB_TASK_ROW_COLUMNS_BUT_PAYLOAD: &str =
    "id, task_type, 'null'::jsonb AS payload, status, created_at, \
     updated_at, scheduler_task_id, scheduler_type, tenant";

/// Inserts new, unbound web tasks in one statement; their rows in the order of `tasks`.
pub fn insert_web_tasks(conn: &mut PgConnection, tasks: &[NewWebTask]) -> QueryResult<Vec<WebTaskRow>> {
    let mut rows: Vec<WebTaskRow> = Prepared(
        diesel::sql_query(format!(
            "INSERT INTO web_tasks (task_type, payload, status, tenant) \
             SELECT item.task_type, item.payload, $3, item.tenant \
             FROM unnest($1::text[], $2::jsonb[], $4::text[]) WITH ORDINALITY AS item(task_type, payload, tenant, position) \
             ORDER BY item.position RETURNING {WEB_TASK_ROW_COLUMNS_BUT_PAYLOAD}"
        ))
        .bind::<Array<Text>, _>(tasks.iter().map(|t| t.task_type.as_str()).collect::<Vec<_>>())
        .bind::<Array<Jsonb>, _>(tasks.iter().map(|t| &t.payload).collect::<Vec<_>>())
        .bind::<Text, _>(WebTaskStatus::Pending.as_str())
        .bind::<Array<Text>, _>(tasks.iter().map(|t| t.tenant.as_str()).collect::<Vec<_>>()),
    )
    .load(conn)?;
    // Ids are drawn in insertion order, which is the request order.
    rows.sort_unstable_by_key(|row| row.id);
    for (row, task) in rows.iter_mut().zip(tasks) {
        row.payload = task.payload.clone();
    }
    Ok(rows)
}

/// A web task's execution: the one of the scheduler task it is bound to. (The follower may
/// link an execution to its web task before the bind has committed; it shows once bound.)
fn bound_execution() -> diesel::dsl::On<
    task_executions::table,
    diesel::dsl::Eq<diesel::dsl::Nullable<task_executions::scheduler_task_id>, web_tasks::scheduler_task_id>,
> {
    task_executions::table.on(task_executions::scheduler_task_id
        .nullable()
        .eq(web_tasks::scheduler_task_id))
}

/// A web task with its mirrored execution (once bound and known).
pub type WebTaskWithExecution = (WebTaskRow, Option<ExecutionRow>);

/// Reads many web tasks in one statement, each with its execution; for each id, in order,
/// its row if it exists.
pub fn find_web_tasks(
    conn: &mut PgConnection,
    ids: &[i64],
) -> QueryResult<Vec<Option<WebTaskWithExecution>>> {
    let rows: Vec<WebTaskWithExecution> = web_tasks::table
        .left_join(bound_execution())
        .filter(web_tasks::id.eq_any(ids))
        .select((WebTaskRow::as_select(), Option::<ExecutionRow>::as_select()))
        .load(conn)?;
    Ok(rows_in_order_of(ids, rows, |(row, _)| row.id))
}

/// Which web tasks a listing returns: those of one tenant; all other filters are optional
/// and combine with AND.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebTaskFilter {
    pub tenant: String,
    pub status: Option<WebTaskStatus>,
    pub task_type: Option<String>,
    /// Bound to a scheduler task or not. A web task is bound exactly when it is SUBMITTED
    /// (CHECK `web_tasks_binding_complete`), so this is a status condition on its index.
    pub bound: Option<bool>,
    /// Only web tasks whose mirrored execution is in this status.
    pub execution_status: Option<TaskStatus>,
    /// Only web tasks created at or after / before these times.
    pub created_from: Option<DateTime<Utc>>,
    pub created_before: Option<DateTime<Utc>>,
    /// Only web tasks with a smaller id (the last id of the previous page).
    pub before_id: Option<i64>,
    /// Only bound web tasks whose execution has not finished as far as TaskPilot knows
    /// (what a cancel could still reach).
    pub unfinished_only: bool,
}

/// Up to `limit` web tasks matching `filter`, newest (highest id) first, each with its
/// execution. A filter on the execution status walks the mirror's index, the tenant first.
pub fn list_web_tasks(
    conn: &mut PgConnection,
    filter: &WebTaskFilter,
    limit: i64,
) -> QueryResult<Vec<WebTaskWithExecution>> {
    let mut query = web_tasks::table
        .left_join(bound_execution())
        .select((WebTaskRow::as_select(), Option::<ExecutionRow>::as_select()))
        .filter(web_tasks::tenant.eq(filter.tenant.clone()))
        .order(web_tasks::id.desc())
        .limit(limit)
        .into_boxed();
    if let Some(status) = filter.status {
        query = query.filter(web_tasks::status.eq(status.as_str()));
    }
    if let Some(bound) = filter.bound {
        let status = if bound {
            WebTaskStatus::Submitted
        } else {
            WebTaskStatus::Pending
        };
        query = query.filter(web_tasks::status.eq(status.as_str()));
    }
    if let Some(task_type) = &filter.task_type {
        query = query.filter(web_tasks::task_type.eq(task_type.clone()));
    }
    if let Some(status) = filter.execution_status {
        // The mirror's web task is the web task's own id once linked: walking its listing
        // index newest first finds the matches without reading the tenant's other tasks.
        query = query
            .filter(task_executions::tenant.eq(filter.tenant.clone()))
            .filter(task_executions::status.eq(status.as_str()))
            .filter(task_executions::web_task_id.eq(web_tasks::id.nullable()))
            .order(task_executions::web_task_id.desc());
        if let Some(before) = filter.before_id {
            query = query.filter(task_executions::web_task_id.lt(before));
        }
    }
    if filter.unfinished_only {
        let finished = TaskStatus::ALL
            .into_iter()
            .filter(|s| s.is_terminal())
            .map(TaskStatus::as_str);
        query = query
            .filter(web_tasks::status.eq(WebTaskStatus::Submitted.as_str()))
            .filter(
                task_executions::status
                    .is_null()
                    .or(task_executions::status.ne_all(finished.collect::<Vec<_>>())),
            );
    }
    if let Some(from) = filter.created_from {
        query = query.filter(web_tasks::created_at.ge(from));
    }
    if let Some(before) = filter.created_before {
        query = query.filter(web_tasks::created_at.lt(before));
    }
    if let Some(before) = filter.before_id {
        query = query.filter(web_tasks::id.lt(before));
    }
    query.load(conn)
}

/// A binding to record, with the execution the scheduler reported when it created the task.
pub type BindingWithExecution = (i64, Binding, ExecutionRecord);

/// Records each binding (web task ids distinct) whose web task is still unbound, and links
/// its execution record, in one statement; for each, in order, what this write changed, or
/// `None` when another bind won (or the web task is gone).
pub fn bind_each_if_unbound(
    conn: &mut PgConnection,
    bindings: &[BindingWithExecution],
) -> QueryResult<Vec<Option<BindingWritten>>> {
    let statement = diesel::sql_query(format!(
        "WITH bound AS ( \
             UPDATE web_tasks w SET scheduler_task_id = b.new_task_id, scheduler_type = b.new_type, \
                 status = $4, bound_at = now(), updated_at = now() \
             FROM unnest($1::bigint[], $2::bigint[], $3::text[]) AS b(web_task_id, new_task_id, new_type) \
             WHERE w.id = b.web_task_id AND w.scheduler_task_id IS NULL \
             RETURNING w.id, w.status, w.updated_at, w.scheduler_task_id, w.scheduler_type, w.tenant \
         ), {LINK_BOUND_SQL} \
         SELECT id, status, updated_at, scheduler_task_id, scheduler_type FROM bound"
    ))
    .into_boxed()
    .bind::<Array<BigInt>, _>(bindings.iter().map(|(id, _, _)| *id).collect::<Vec<_>>())
    .bind::<Array<BigInt>, _>(
        bindings
            .iter()
            .map(|(_, b, _)| b.scheduler_task_id)
            .collect::<Vec<_>>(),
    )
    .bind::<Array<Text>, _>(
        bindings
            .iter()
            .map(|(_, b, _)| b.scheduler_type.as_str())
            .collect::<Vec<_>>(),
    )
    .bind::<Text, _>(WebTaskStatus::Submitted.as_str());
    let rows: Vec<BindingWritten> =
        Prepared(bind_link_columns(statement, bindings.iter().map(|(_, _, r)| r))).load(conn)?;
    let ids: Vec<i64> = bindings.iter().map(|(id, _, _)| *id).collect();
    Ok(rows_in_order_of(&ids, rows, |row| row.id))
}
