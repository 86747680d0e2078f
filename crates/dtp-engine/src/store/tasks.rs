//! Queries on `tasks`. Every write that follows a claim is guarded by the attempt's
//! lease token and the RUNNING status, so a superseded attempt's late write changes nothing.

use chrono::{DateTime, Utc};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use diesel::row::NamedRow;
use diesel::sql_types::{Array, BigInt, Int4, Jsonb, Nullable, Text, Timestamptz};
use dtp_contract::{RetryState, TaskResponse, TaskStatus};
use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use super::schema::tasks;
use super::StoreError;
use crate::domain::{AttemptOutcome, NewTask, TaskState};

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
        })
    }
}

/// The result of an insert that may have hit an existing idempotency key.
pub enum Inserted {
    Created(TaskRow),
    Existing(TaskRow),
}

/// A batch's idempotency key names an existing task with another type, payload or
/// maxAttempts; the whole batch was rolled back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyNamesAnotherTask {
    /// Position of the offending task in the inserted slice.
    pub slot: usize,
    pub existing_id: i64,
}

/// Why a batch transaction ended without committing.
enum BatchAbort {
    KeyNamesAnotherTask(KeyNamesAnotherTask),
    Query(diesel::result::Error),
}

impl From<diesel::result::Error> for BatchAbort {
    fn from(err: diesel::result::Error) -> Self {
        BatchAbort::Query(err)
    }
}

/// Inserts `tasks` (idempotency keys distinct) in one transaction: one multi-row insert that
/// skips taken keys, then one read of the tasks those keys name; rolls back on a mismatch.
pub fn insert_tasks(
    conn: &mut PgConnection,
    tasks: &[NewTask],
) -> QueryResult<Result<Vec<Inserted>, KeyNamesAnotherTask>> {
    let outcome = conn.transaction(|conn| {
        let answers = insert_or_find(conn, tasks)?;
        for (slot, (task, answer)) in tasks.iter().zip(&answers).enumerate() {
            if let Inserted::Existing(row) = answer {
                if !task.matches(&row.task_type, &row.payload, row.max_attempts) {
                    return Err(BatchAbort::KeyNamesAnotherTask(KeyNamesAnotherTask {
                        slot,
                        existing_id: row.id,
                    }));
                }
            }
        }
        Ok(answers)
    });
    match outcome {
        Ok(answers) => Ok(Ok(answers)),
        Err(BatchAbort::KeyNamesAnotherTask(reused)) => Ok(Err(reused)),
        Err(BatchAbort::Query(e)) => Err(e),
    }
}

/// Inserts independent submissions (idempotency keys distinct) in one transaction; each
/// is answered on its own, an existing task for a taken key whatever it holds.
pub fn insert_each_task(conn: &mut PgConnection, tasks: &[NewTask]) -> QueryResult<Vec<Inserted>> {
    conn.transaction(|conn| insert_or_find(conn, tasks))
}

/// For each task, in order: the row inserted for it, or the existing row its taken key names.
fn insert_or_find(conn: &mut PgConnection, tasks: &[NewTask]) -> QueryResult<Vec<Inserted>> {
    let mut created_by_key = HashMap::new();
    let mut created_without_key = VecDeque::new();
    for row in insert_rows_skipping_taken_keys(conn, tasks)? {
        match row.idempotency_key.clone() {
            Some(key) => {
                created_by_key.insert(key, row);
            }
            None => created_without_key.push_back(row),
        }
    }
    let taken: Vec<&str> = tasks
        .iter()
        .filter_map(|t| t.idempotency_key.as_deref())
        .filter(|key| !created_by_key.contains_key(*key))
        .collect();
    let mut existing_by_key: HashMap<String, TaskRow> = HashMap::new();
    if !taken.is_empty() {
        // Conflicting inserts were waited for, so the rows they made are visible now.
        let rows: Vec<TaskRow> = tasks::table
            .filter(tasks::idempotency_key.eq_any(&taken))
            .select(TaskRow::as_select())
            .load(conn)?;
        existing_by_key.extend(
            rows.into_iter()
                .filter_map(|r| Some((r.idempotency_key.clone()?, r))),
        );
    }
    tasks
        .iter()
        .map(|task| match &task.idempotency_key {
            None => Ok(Inserted::Created(
                created_without_key.pop_front().ok_or(diesel::NotFound)?,
            )),
            Some(key) => match created_by_key.remove(key) {
                Some(row) => Ok(Inserted::Created(row)),
                None => Ok(Inserted::Existing(
                    existing_by_key.remove(key).ok_or(diesel::NotFound)?,
                )),
            },
        })
        .collect()
}

/// The rows of `tasks` that were inserted, in id order.
fn insert_rows_skipping_taken_keys(conn: &mut PgConnection, tasks: &[NewTask]) -> QueryResult<Vec<TaskRow>> {
    // One statement whatever the batch size: columns travel as arrays, so the text (and
    // its plan) stays the same, and the statement-level NOTIFY trigger fires once. Keyed
    // rows go in key order, so concurrent batches sharing keys take their locks in one
    // order and cannot deadlock; rows without a key follow in request order.
    let mut rows: Vec<TaskRow> = diesel::sql_query(
        "INSERT INTO tasks (task_type, payload, max_attempts, idempotency_key, timeout_ms, \
                            scheduled_for, status, retry_state) \
         SELECT item.task_type, item.payload, item.max_attempts, item.idempotency_key, item.timeout_ms, \
                COALESCE(item.run_at, now()), $7, $8 \
         FROM unnest($1::text[], $2::jsonb[], $3::int4[], $4::text[], $5::int4[], $6::timestamptz[]) \
              WITH ORDINALITY AS item(task_type, payload, max_attempts, idempotency_key, timeout_ms, \
                                      run_at, position) \
         ORDER BY item.idempotency_key NULLS LAST, item.position \
         ON CONFLICT (idempotency_key) DO NOTHING \
         RETURNING *",
    )
    .bind::<Array<Text>, _>(tasks.iter().map(|t| t.task_type.as_str()).collect::<Vec<_>>())
    .bind::<Array<Jsonb>, _>(tasks.iter().map(|t| &t.payload).collect::<Vec<_>>())
    .bind::<Array<Int4>, _>(tasks.iter().map(|t| t.max_attempts).collect::<Vec<_>>())
    .bind::<Array<Nullable<Text>>, _>(
        tasks
            .iter()
            .map(|t| t.idempotency_key.as_deref())
            .collect::<Vec<_>>(),
    )
    .bind::<Array<Int4>, _>(tasks.iter().map(|t| t.timeout_ms).collect::<Vec<_>>())
    .bind::<Array<Nullable<Timestamptz>>, _>(tasks.iter().map(|t| t.run_at).collect::<Vec<_>>())
    .bind::<Text, _>(TaskState::NEW.status.as_str())
    .bind::<Text, _>(TaskState::NEW.retry_state.as_str())
    .load(conn)?;
    // Rows draw their ids from the sequence in the order they are inserted, so sorting by
    // id puts the keyless rows back in request order whatever order RETURNING used.
    rows.sort_unstable_by_key(|row| row.id);
    Ok(rows)
}

/// Reads one task.
pub fn find_task(conn: &mut PgConnection, id: i64) -> QueryResult<Option<TaskRow>> {
    tasks::table
        .find(id)
        .select(TaskRow::as_select())
        .first(conn)
        .optional()
}

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
    let mut query = tasks::table
        .select(TaskRow::as_select())
        .order(tasks::id.desc())
        .limit(limit)
        .into_boxed();
    if let Some(status) = filter.status {
        query = query.filter(tasks::status.eq(status.as_str()));
    }
    if let Some(task_type) = &filter.task_type {
        query = query.filter(tasks::task_type.eq(task_type.clone()));
    }
    if let Some(before) = filter.before_id {
        query = query.filter(tasks::id.lt(before));
    }
    query.load(conn)
}

/// Moves a task to `next` (CANCELED) if it is still in `expected`; closes its open attempt.
pub fn cancel_task_if_in(
    conn: &mut PgConnection,
    id: i64,
    expected: TaskStatus,
    next: TaskState,
) -> QueryResult<bool> {
    let canceled = diesel::sql_query(
        "WITH old AS ( \
             SELECT id, lease_token FROM tasks WHERE id = $1 AND status = $2 FOR UPDATE \
         ), canceled AS ( \
             UPDATE tasks t SET status = $3, retry_state = $4, completed_at = now(), \
                 lease_token = NULL, lease_expires_at = NULL, worker_id = NULL, updated_at = now() \
             FROM old WHERE t.id = old.id RETURNING t.id \
         ), closed AS ( \
             UPDATE task_attempts a SET finished_at = now(), outcome = $5, error = 'canceled by request' \
             FROM old WHERE a.lease_token = old.lease_token AND a.finished_at IS NULL \
               AND EXISTS (SELECT 1 FROM canceled) \
         ) SELECT id FROM canceled",
    )
    .bind::<BigInt, _>(id)
    .bind::<Text, _>(expected.as_str())
    .bind::<Text, _>(next.status.as_str())
    .bind::<Text, _>(next.retry_state.as_str())
    .bind::<Text, _>(AttemptOutcome::Canceled.as_str())
    .execute(conn)?;
    Ok(canceled == 1)
}

/// A task a worker has just claimed, with the lease that fences its attempt.
#[derive(Debug, Clone, QueryableByName)]
#[diesel(table_name = tasks)]
pub struct ClaimedTask {
    pub id: i64,
    pub task_type: String,
    pub payload: serde_json::Value,
    pub attempt_count: i32,
    pub max_attempts: i32,
    pub timeout_ms: i32,
    pub retry_state: String,
    #[diesel(sql_type = BigInt)]
    pub lease_token: i64,
    /// Milliseconds from the task being due to this claim (the pickup latency).
    #[diesel(sql_type = diesel::sql_types::Double)]
    pub pickup_ms: f64,
}

/// Claims up to `limit` due PENDING tasks for `worker_id` in one statement and opens their attempts.
pub fn claim_due_tasks(
    conn: &mut PgConnection,
    worker_id: &str,
    limit: i64,
    lease: Duration,
    running: TaskStatus,
) -> QueryResult<Vec<ClaimedTask>> {
    claim_statement(Planning::Run, worker_id, limit, lease, running).load(conn)
}

fn claim_statement(
    planning: Planning,
    worker_id: &str,
    limit: i64,
    lease: Duration,
    running: TaskStatus,
) -> BoxedSqlQuery<'_, Pg, SqlQuery> {
    planning
        .statement(
            "WITH due AS ( \
             SELECT id FROM tasks WHERE status = 'PENDING' AND scheduled_for <= now() \
             ORDER BY scheduled_for, id LIMIT $1 FOR UPDATE SKIP LOCKED \
         ), claimed AS ( \
             UPDATE tasks t SET status = $4, attempt_count = t.attempt_count + 1, \
                 processing_started_at = now(), completed_at = NULL, \
                 lease_token = nextval('task_lease_tokens'), \
                 lease_expires_at = now() + $2 * interval '1 millisecond', \
                 worker_id = $3, updated_at = now() \
             FROM due WHERE t.id = due.id \
             RETURNING t.id, t.task_type, t.payload, t.attempt_count, t.max_attempts, t.timeout_ms, \
                       t.retry_state, t.lease_token, t.worker_id, t.processing_started_at, t.scheduled_for \
         ), opened AS ( \
             INSERT INTO task_attempts (lease_token, task_id, attempt, worker_id, started_at, due_at) \
             SELECT lease_token, id, attempt_count, worker_id, processing_started_at, scheduled_for \
             FROM claimed \
         ) SELECT id, task_type, payload, attempt_count, max_attempts, timeout_ms, retry_state, lease_token, \
                  GREATEST(EXTRACT(EPOCH FROM processing_started_at - scheduled_for) * 1000, 0)::float8 AS pickup_ms \
           FROM claimed ORDER BY id",
        )
        .bind::<BigInt, _>(limit)
        .bind::<BigInt, _>(millis(lease))
        .bind::<Text, _>(worker_id)
        .bind::<Text, _>(running.as_str())
}

#[derive(QueryableByName)]
struct DueIn {
    #[diesel(sql_type = Nullable<diesel::sql_types::Double>)]
    millis: Option<f64>,
}

/// Milliseconds until the next PENDING task falls due (negative when one is due now), or
/// `None` when nothing is pending; the first row of the claim's own partial index.
pub fn next_due_in(conn: &mut PgConnection) -> QueryResult<Option<f64>> {
    let due: DueIn = diesel::sql_query(
        "SELECT (EXTRACT(EPOCH FROM min(scheduled_for) - now()) * 1000)::float8 AS millis \
         FROM tasks WHERE status = 'PENDING'",
    )
    .get_result(conn)?;
    Ok(due.millis)
}

/// How a finished attempt's write is guarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseGuard {
    /// The attempt itself reports: its lease token must still hold the task.
    Held,
    /// The rescuer reports for a lost worker: the lease must also have expired.
    Expired,
}

/// The end of one attempt as decided by the state machine.
#[derive(Debug, Clone)]
pub struct AttemptEnd {
    pub task_id: i64,
    pub lease_token: i64,
    pub next: TaskState,
    pub outcome: AttemptOutcome,
    pub error: Option<String>,
    /// For a retry: how long from now until the next attempt is due.
    pub retry_in: Option<Duration>,
}

/// Writes the end of an attempt if the attempt still holds the task ("set state if running").
/// Returns false when the attempt was fenced off (canceled, rescued, superseded).
pub fn finish_attempt(conn: &mut PgConnection, end: &AttemptEnd, guard: LeaseGuard) -> QueryResult<bool> {
    Ok(!finish_attempts(conn, std::slice::from_ref(end), guard)?.is_empty())
}

/// Writes the ends of many attempts in one statement, each guarded as `finish_attempt`
/// guards one; returns the lease tokens of the attempts that still held their task.
pub fn finish_attempts(
    conn: &mut PgConnection,
    ends: &[AttemptEnd],
    guard: LeaseGuard,
) -> QueryResult<Vec<i64>> {
    if ends.is_empty() {
        return Ok(Vec::new());
    }
    let columns = AttemptEndColumns::of(ends);
    let rows: Vec<LeaseTokenRow> = finish_attempts_statement(Planning::Run, &columns, guard).load(conn)?;
    Ok(rows.into_iter().map(|r| r.lease_token).collect())
}

/// The attempt ends of one batch as the statement's array parameters.
struct AttemptEndColumns<'a> {
    task_ids: Vec<i64>,
    lease_tokens: Vec<i64>,
    statuses: Vec<&'a str>,
    retry_states: Vec<&'a str>,
    errors: Vec<Option<&'a str>>,
    retry_in_ms: Vec<Option<i64>>,
    outcomes: Vec<&'a str>,
}

impl<'a> AttemptEndColumns<'a> {
    fn of(ends: &'a [AttemptEnd]) -> Self {
        Self {
            task_ids: ends.iter().map(|e| e.task_id).collect(),
            lease_tokens: ends.iter().map(|e| e.lease_token).collect(),
            statuses: ends.iter().map(|e| e.next.status.as_str()).collect(),
            retry_states: ends.iter().map(|e| e.next.retry_state.as_str()).collect(),
            errors: ends.iter().map(|e| e.error.as_deref()).collect(),
            retry_in_ms: ends.iter().map(|e| e.retry_in.map(millis)).collect(),
            outcomes: ends.iter().map(|e| e.outcome.as_str()).collect(),
        }
    }
}

fn finish_attempts_statement<'a>(
    planning: Planning,
    columns: &'a AttemptEndColumns<'a>,
    guard: LeaseGuard,
) -> BoxedSqlQuery<'a, Pg, SqlQuery> {
    let guard_sql = match guard {
        LeaseGuard::Held => "",
        LeaseGuard::Expired => "AND t.lease_expires_at < now()",
    };
    planning
        .statement(&format!(
            "WITH ended AS ( \
                 SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], \
                                      $6::bigint[], $7::text[]) \
                     AS e(task_id, lease_token, status, retry_state, error, retry_in_ms, outcome) \
             ), finished AS ( \
                 UPDATE tasks t SET status = e.status, retry_state = e.retry_state, \
                     last_error = COALESCE(e.error, t.last_error), \
                     scheduled_for = CASE WHEN e.retry_in_ms IS NULL THEN t.scheduled_for \
                                          ELSE now() + e.retry_in_ms * interval '1 millisecond' END, \
                     completed_at = CASE WHEN e.status IN ('SUCCEEDED', 'FAILED', 'CANCELED') THEN now() END, \
                     lease_token = NULL, lease_expires_at = NULL, worker_id = NULL, updated_at = now() \
                 FROM ended e \
                 WHERE t.id = e.task_id AND t.status = 'RUNNING' AND t.lease_token = e.lease_token {guard_sql} \
                 RETURNING e.lease_token, e.task_id, e.outcome, e.error \
             ), closed AS ( \
                 UPDATE task_attempts a SET finished_at = now(), outcome = f.outcome, error = f.error \
                 FROM finished f WHERE a.lease_token = f.lease_token AND a.task_id = f.task_id \
             ) SELECT lease_token FROM finished"
        ))
        .bind::<Array<BigInt>, _>(&columns.task_ids)
        .bind::<Array<BigInt>, _>(&columns.lease_tokens)
        .bind::<Array<Text>, _>(&columns.statuses)
        .bind::<Array<Text>, _>(&columns.retry_states)
        .bind::<Array<Nullable<Text>>, _>(&columns.errors)
        .bind::<Array<Nullable<BigInt>>, _>(&columns.retry_in_ms)
        .bind::<Array<Text>, _>(&columns.outcomes)
}

/// Whether a hot-path statement is run, or only planned by `EXPLAIN` (the plan checks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Planning {
    Run,
    Explain,
}

impl Planning {
    fn statement(self, sql: &str) -> BoxedSqlQuery<'static, Pg, SqlQuery> {
        let prefix = match self {
            Planning::Run => "",
            Planning::Explain => "EXPLAIN ",
        };
        diesel::sql_query(format!("{prefix}{sql}")).into_boxed()
    }
}

/// One line of an `EXPLAIN` answer.
struct PlanLine(String);

impl QueryableByName<Pg> for PlanLine {
    fn build<'a>(row: &impl NamedRow<'a, Pg>) -> diesel::deserialize::Result<Self> {
        Ok(Self(NamedRow::get::<Text, String>(row, "QUERY PLAN")?))
    }
}

/// The plans Postgres picks for the statements every task goes through (claim, completion,
/// lease extension, rescue), by name: what the "no sequential scan on the hot path" check reads.
pub fn explain_hot_path(conn: &mut PgConnection) -> QueryResult<Vec<(&'static str, String)>> {
    let plan = |lines: Vec<PlanLine>| lines.into_iter().map(|l| l.0).collect::<Vec<_>>().join("\n");
    let ends: Vec<AttemptEnd> = (1..=100)
        .map(|i| AttemptEnd {
            task_id: i,
            lease_token: i,
            next: TaskState::new(TaskStatus::Succeeded, RetryState::Completed),
            outcome: AttemptOutcome::Succeeded,
            error: None,
            retry_in: None,
        })
        .collect();
    let columns = AttemptEndColumns::of(&ends);
    let tokens: Vec<i64> = (1..=100).collect();
    let lease = Duration::from_secs(30);
    Ok(vec![
        (
            "claim_due_tasks",
            plan(
                claim_statement(Planning::Explain, "plan-check", 100, lease, TaskStatus::Running)
                    .load(conn)?,
            ),
        ),
        (
            "finish_attempts",
            plan(finish_attempts_statement(Planning::Explain, &columns, LeaseGuard::Held).load(conn)?),
        ),
        (
            "extend_leases",
            plan(extend_leases_statement(Planning::Explain, &tokens, lease).load(conn)?),
        ),
        (
            "find_expired_leases",
            plan(expired_leases_statement(Planning::Explain, 100).load(conn)?),
        ),
    ])
}

#[derive(QueryableByName)]
struct LeaseTokenRow {
    #[diesel(sql_type = BigInt)]
    lease_token: i64,
}

/// Extends the leases that are still held; returns the tokens that still hold their task.
pub fn extend_leases(conn: &mut PgConnection, tokens: &[i64], lease: Duration) -> QueryResult<Vec<i64>> {
    if tokens.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<LeaseTokenRow> = extend_leases_statement(Planning::Run, tokens, lease).load(conn)?;
    Ok(rows.into_iter().map(|r| r.lease_token).collect())
}

fn extend_leases_statement(
    planning: Planning,
    tokens: &[i64],
    lease: Duration,
) -> BoxedSqlQuery<'_, Pg, SqlQuery> {
    planning
        .statement(
            "UPDATE tasks SET lease_expires_at = now() + $2 * interval '1 millisecond' \
             WHERE status = 'RUNNING' AND lease_token = ANY($1) RETURNING lease_token",
        )
        .bind::<Array<BigInt>, _>(tokens)
        .bind::<BigInt, _>(millis(lease))
}

/// Gives unfinished attempts back at shutdown: PENDING again, due now, the attempt not counted.
pub fn release_attempts(conn: &mut PgConnection, tokens: &[i64], next: TaskStatus) -> QueryResult<usize> {
    if tokens.is_empty() {
        return Ok(0);
    }
    diesel::sql_query(
        "WITH released AS ( \
             UPDATE tasks SET status = $2, attempt_count = attempt_count - 1, \
                 lease_token = NULL, lease_expires_at = NULL, worker_id = NULL, updated_at = now() \
             WHERE status = 'RUNNING' AND lease_token = ANY($1) RETURNING id \
         ) UPDATE task_attempts SET finished_at = now(), outcome = $3, error = 'released at shutdown' \
           WHERE lease_token = ANY($1) AND task_id IN (SELECT id FROM released)",
    )
    .bind::<Array<BigInt>, _>(tokens)
    .bind::<Text, _>(next.as_str())
    .bind::<Text, _>(AttemptOutcome::Released.as_str())
    .execute(conn)
}

/// A RUNNING task whose lease ran out: its worker is presumed dead.
#[derive(Debug, Clone, QueryableByName)]
#[diesel(table_name = tasks)]
pub struct ExpiredLease {
    pub id: i64,
    pub attempt_count: i32,
    pub max_attempts: i32,
    #[diesel(sql_type = BigInt)]
    pub lease_token: i64,
    #[diesel(sql_type = Text)]
    pub worker_id: String,
}

/// Finds up to `limit` running tasks whose lease expired.
pub fn find_expired_leases(conn: &mut PgConnection, limit: i64) -> QueryResult<Vec<ExpiredLease>> {
    expired_leases_statement(Planning::Run, limit).load(conn)
}

fn expired_leases_statement(planning: Planning, limit: i64) -> BoxedSqlQuery<'static, Pg, SqlQuery> {
    planning
        .statement(
            "SELECT id, attempt_count, max_attempts, lease_token, worker_id FROM tasks \
             WHERE status = 'RUNNING' AND lease_expires_at < now() \
             ORDER BY lease_expires_at LIMIT $1",
        )
        .bind::<BigInt, _>(limit)
}

/// Counts tasks per status (for tests and diagnostics).
pub fn count_by_status(conn: &mut PgConnection) -> QueryResult<Vec<(String, i64)>> {
    tasks::table
        .group_by(tasks::status)
        .select((tasks::status, diesel::dsl::count_star()))
        .load(conn)
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}
