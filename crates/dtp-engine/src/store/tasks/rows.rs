//! The `tasks` row and the statements on single tasks: read, cancel, queue moves, and the
//! cleanup of finished tasks.

use chrono::{DateTime, Utc};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use diesel::sql_types::{BigInt, Text};
use dtp_contract::{RetryState, TaskResponse, TaskStatus};
use service_postgres::group_commit::rows_in_order_of;
use service_postgres::prepared::Prepared;

use super::listing::LISTED_TYPES;
use super::plans::Planning;
use crate::domain::new_task::SubmittedAs;
use crate::domain::{AttemptOutcome, TaskState};
use crate::store::schema::tasks;
use crate::store::StoreError;

/// One row of `tasks`.
#[derive(Debug, Clone, Queryable, QueryableByName, Selectable)]
#[diesel(table_name = tasks)]
#[diesel(check_for_backend(diesel::pg::Pg))]
pub struct TaskRow {
    pub id: i64,
    pub task_type: String,
    pub payload: serde_json::Value,
    pub status: String,
    pub retry_state: String,
    pub attempt_count: i32,
    pub max_attempts: i32,
    pub last_error: Option<String>,
    pub idempotency_key: Option<String>,
    pub created_at: DateTime<Utc>,
    pub scheduled_for: DateTime<Utc>,
    pub processing_started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    pub lease_token: Option<i64>,
    pub lease_expires_at: Option<DateTime<Utc>>,
    pub worker_id: Option<String>,
    pub timeout_ms: i32,
    pub result: Option<serde_json::Value>,
    pub idempotency_scope: String,
    pub requested_run_at: Option<DateTime<Utc>>,
}

impl TaskRow {
    pub fn state(&self) -> Result<TaskState, StoreError> {
        let status = TaskStatus::parse(&self.status).ok_or_else(|| {
            StoreError::CorruptRow(format!("task {} has status {:?}", self.id, self.status))
        })?;
        let retry_state = RetryState::parse(&self.retry_state).ok_or_else(|| {
            StoreError::CorruptRow(format!("task {} has retry state {:?}", self.id, self.retry_state))
        })?;
        Ok(TaskState { status, retry_state })
    }

    /// What the task was submitted as (for a repeated idempotency key).
    pub fn submitted_as(&self) -> SubmittedAs<'_> {
        SubmittedAs {
            task_type: &self.task_type,
            payload: &self.payload,
            max_attempts: self.max_attempts,
            timeout_ms: self.timeout_ms,
            run_at: self.requested_run_at,
        }
    }

    pub fn into_response(self) -> Result<TaskResponse, StoreError> {
        let state = self.state()?;
        Ok(TaskResponse {
            id: self.id,
            task_type: self.task_type,
            payload: self.payload,
            status: state.status,
            attempt_count: self.attempt_count,
            max_attempts: self.max_attempts,
            timeout_ms: self.timeout_ms,
            retry_state: state.retry_state,
            last_error: self.last_error,
            created_at: self.created_at,
            scheduled_for: self.scheduled_for,
            processing_started_at: self.processing_started_at,
            completed_at: self.completed_at,
            updated_at: self.updated_at,
            result: self.result,
        })
    }
}

/// `TaskRow`'s columns, named: a kept prepared statement must not change its result's shape
/// when a later migration adds a column, as `RETURNING *` would.
pub(super) const TASK_ROW_COLUMNS: &str =
    "id, task_type, payload, status, retry_state, attempt_count, max_attempts, \
     last_error, idempotency_key, created_at, scheduled_for, processing_started_at, completed_at, \
     updated_at, lease_token, lease_expires_at, worker_id, timeout_ms, result, idempotency_scope, \
     requested_run_at";

/// Reads one task.
pub fn find_task(conn: &mut PgConnection, id: i64) -> QueryResult<Option<TaskRow>> {
    tasks::table
        .find(id)
        .select(TaskRow::as_select())
        .first(conn)
        .optional()
}

/// Reads many tasks in one statement; for each id, in order, its row if it exists.
pub fn find_tasks(conn: &mut PgConnection, ids: &[i64]) -> QueryResult<Vec<Option<TaskRow>>> {
    let rows: Vec<TaskRow> = tasks::table
        .filter(tasks::id.eq_any(ids))
        .select(TaskRow::as_select())
        .load(conn)?;
    Ok(rows_in_order_of(ids, rows, |row| row.id))
}

/// Moves a task to `next` (CANCELED) if it is still in `expected`; closes its open attempt.
pub fn cancel_task_if_in(
    conn: &mut PgConnection,
    id: i64,
    expected: TaskStatus,
    next: TaskState,
) -> QueryResult<bool> {
    let canceled = Prepared(
        diesel::sql_query(
            "WITH old AS ( \
             SELECT id, lease_token FROM tasks WHERE id = $1 AND status = $2 FOR UPDATE \
         ), canceled AS ( \
             UPDATE tasks t SET status = $3, retry_state = $4, completed_at = now(), \
                 lease_token = NULL, lease_expires_at = NULL, worker_id = NULL, updated_at = now() \
             FROM old WHERE t.id = old.id RETURNING t.id \
         ), closed AS ( \
             UPDATE task_attempts a SET finished_at = now(), outcome = $5, error = 'canceled by request' \
             FROM old WHERE a.task_id = old.id AND a.lease_token = old.lease_token AND a.finished_at IS NULL \
               AND EXISTS (SELECT 1 FROM canceled) \
         ) SELECT id FROM canceled",
        )
        .bind::<BigInt, _>(id)
        .bind::<Text, _>(expected.as_str())
        .bind::<Text, _>(next.status.as_str())
        .bind::<Text, _>(next.retry_state.as_str())
        .bind::<Text, _>(AttemptOutcome::Canceled.as_str()),
    )
    .execute(conn)?;
    Ok(canceled == 1)
}

#[derive(QueryableByName)]
pub(super) struct LeaseTokenRow {
    #[diesel(sql_type = BigInt)]
    pub(super) lease_token: i64,
}

/// Moves the PENDING tasks of each named type to the queue its settings now give it
/// (`true`: the type's own); returns how many moved. Tasks of other types are left alone.
pub fn assign_queues(conn: &mut PgConnection, queues: &[(String, bool)]) -> QueryResult<usize> {
    if queues.is_empty() {
        return Ok(0);
    }
    let (types, own): (Vec<&str>, Vec<bool>) = queues.iter().map(|(t, own)| (t.as_str(), *own)).unzip();
    diesel::sql_query(
        "UPDATE tasks t SET type_queue = q.own \
         FROM unnest($1::text[], $2::bool[]) AS q(task_type, own) \
         WHERE t.status = 'PENDING' AND t.task_type = q.task_type AND t.type_queue <> q.own",
    )
    .bind::<diesel::sql_types::Array<Text>, _>(types)
    .bind::<diesel::sql_types::Array<diesel::sql_types::Bool>, _>(own)
    .execute(conn)
}

/// Runs `clean` in one transaction if no other engine is cleaning; `None` when one is.
pub fn under_cleanup_lock<T>(
    conn: &mut PgConnection,
    clean: impl FnOnce(&mut PgConnection) -> QueryResult<T>,
) -> QueryResult<Option<T>> {
    #[derive(QueryableByName)]
    struct Locked {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        locked: bool,
    }
    conn.transaction(|conn| {
        let lock: Locked = diesel::sql_query(
            "SELECT pg_try_advisory_xact_lock(hashtextextended('dtp.cleanup', 0)) AS locked",
        )
        .get_result(conn)?;
        if lock.locked {
            clean(conn).map(Some)
        } else {
            Ok(None)
        }
    })
}

/// The task types that have tasks outside RUNNING, in no particular order (the cleaner's
/// round over them).
pub fn types_with_listed_tasks(conn: &mut PgConnection) -> QueryResult<Vec<String>> {
    #[derive(QueryableByName)]
    struct Listed {
        #[diesel(sql_type = Text)]
        task_type: String,
    }
    let types: Vec<Listed> = diesel::sql_query(format!(
        "WITH RECURSIVE {LISTED_TYPES} SELECT task_type FROM listed_types WHERE task_type IS NOT NULL"
    ))
    .load(conn)?;
    Ok(types.into_iter().map(|t| t.task_type).collect())
}

/// One batch of the cleaner's deletion of finished tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeletedBatch {
    pub deleted: usize,
    /// The highest id deleted (the next batch starts after it); `None` when none was.
    pub last_id: Option<i64>,
}

/// Deletes the tasks of `task_type` in `status` that finished before `before`, among the
/// `limit` oldest (by id) after `after_id`, with their attempts. Walking the oldest only keeps
/// each statement short (a recent task among them is deleted once it ages); starting after
/// the last batch's highest id steps over the index entries that batch left behind, which
/// stay until a vacuum.
pub fn delete_finished_tasks(
    conn: &mut PgConnection,
    task_type: &str,
    status: TaskStatus,
    before: DateTime<Utc>,
    after_id: i64,
    limit: i64,
) -> QueryResult<DeletedBatch> {
    debug_assert!(status.is_terminal());
    #[derive(QueryableByName)]
    struct Deleted {
        #[diesel(sql_type = BigInt)]
        deleted: i64,
        #[diesel(sql_type = diesel::sql_types::Nullable<BigInt>)]
        last_id: Option<i64>,
    }
    let batch: Deleted = delete_finished_statement(Planning::Run)
        .bind::<Text, _>(status.as_str())
        .bind::<diesel::sql_types::Timestamptz, _>(before)
        .bind::<BigInt, _>(limit)
        .bind::<Text, _>(task_type.to_owned())
        .bind::<BigInt, _>(after_id)
        .get_result(conn)?;
    Ok(DeletedBatch {
        deleted: usize::try_from(batch.deleted).unwrap_or(0),
        last_id: batch.last_id,
    })
}

/// `$1` the status, `$2` finished before, `$3` the batch, `$4` the type, `$5` after this id:
/// a range of the listing index.
pub(super) fn delete_finished_statement(planning: Planning) -> BoxedSqlQuery<'static, Pg, SqlQuery> {
    planning.statement(
        "WITH oldest AS ( \
             SELECT id FROM tasks \
             WHERE status <> 'RUNNING' AND status = $1 AND task_type = $4 AND id > $5 \
             ORDER BY id LIMIT $3 \
         ), gone AS ( \
             DELETE FROM tasks t USING oldest o \
             WHERE t.id = o.id AND t.status = $1 AND t.completed_at < $2 \
             RETURNING t.id \
         ) SELECT count(*) AS deleted, max(id) AS last_id FROM gone",
    )
}

/// Counts tasks per status (for tests and diagnostics).
pub fn count_by_status(conn: &mut PgConnection) -> QueryResult<Vec<(String, i64)>> {
    tasks::table
        .group_by(tasks::status)
        .select((tasks::status, diesel::dsl::count_star()))
        .load(conn)
}
