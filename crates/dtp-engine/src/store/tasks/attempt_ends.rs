//! Ending attempts: many ends in one statement, each row guarded by its attempt's lease
//! token and the RUNNING status ("set state if running"), so fenced-off attempts change nothing.

use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use diesel::sql_types::{Array, BigInt, Bytea, Jsonb, Nullable, Text};
use service_postgres::prepared::Prepared;
use std::time::Duration;

use super::plans::Planning;
use super::{millis, LeaseTokenRow};
use crate::domain::{AttemptOutcome, TaskState};

/// How a finished attempt's write is guarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseGuard {
    /// The attempt itself reports: its lease token must still hold the task.
    Held,
    /// The rescuer reports for a lost worker: the lease must also have expired.
    Expired,
    /// A worker outside the engine reports: its lease must hold, not have run out, and carry
    /// the attempt's secret (`AttemptEnd::lease_secret`).
    Worker,
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
    /// What a successful attempt produced (already checked by `check_kept`).
    pub result: Option<serde_json::Value>,
    /// The secret of a worker's lease (`LeaseGuard::Worker`); `None` for the engine's attempts.
    pub lease_secret: Option<[u8; crate::domain::lease::LEASE_SECRET_BYTES]>,
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
    let rows: Vec<LeaseTokenRow> =
        Prepared(finish_attempts_statement(Planning::Run, &columns, guard)).load(conn)?;
    Ok(rows.into_iter().map(|r| r.lease_token).collect())
}

/// The attempt ends of one batch as the statement's array parameters.
pub(super) struct AttemptEndColumns<'a> {
    task_ids: Vec<i64>,
    lease_tokens: Vec<i64>,
    statuses: Vec<&'a str>,
    retry_states: Vec<&'a str>,
    errors: Vec<Option<&'a str>>,
    retry_in_ms: Vec<Option<i64>>,
    outcomes: Vec<&'a str>,
    results: Vec<Option<&'a serde_json::Value>>,
    secrets: Vec<Option<&'a [u8]>>,
}

impl<'a> AttemptEndColumns<'a> {
    pub(super) fn of(ends: &'a [AttemptEnd]) -> Self {
        Self {
            task_ids: ends.iter().map(|e| e.task_id).collect(),
            lease_tokens: ends.iter().map(|e| e.lease_token).collect(),
            statuses: ends.iter().map(|e| e.next.status.as_str()).collect(),
            retry_states: ends.iter().map(|e| e.next.retry_state.as_str()).collect(),
            errors: ends.iter().map(|e| e.error.as_deref()).collect(),
            retry_in_ms: ends.iter().map(|e| e.retry_in.map(millis)).collect(),
            outcomes: ends.iter().map(|e| e.outcome.as_str()).collect(),
            results: ends.iter().map(|e| e.result.as_ref()).collect(),
            secrets: ends
                .iter()
                .map(|e| e.lease_secret.as_ref().map(|s| &s[..]))
                .collect(),
        }
    }
}

/// The parts of the ends statement that depend on its guard.
struct GuardSql {
    /// `MATERIALIZED ` or nothing, before the `ended` CTE.
    materialized: &'static str,
    /// Columns `ended` adds to each end.
    carried: &'static str,
    /// The secrets' array parameter and its column, for workers' ends.
    secrets: &'static str,
    secret_column: &'static str,
    /// The status a task must still have.
    running: &'static str,
    /// What the guard adds to the task's lease token and status.
    condition: &'static str,
}

impl GuardSql {
    fn of(guard: LeaseGuard) -> Self {
        let engine = Self {
            materialized: "",
            carried: "",
            secrets: "",
            secret_column: "",
            running: "'RUNNING'",
            condition: "",
        };
        match guard {
            LeaseGuard::Held => engine,
            LeaseGuard::Expired => Self {
                condition: "AND t.lease_expires_at < now()",
                ..engine
            },
            // A worker's guard compares each task with values its end carries (`e.running`,
            // and `e.checked_at`, the statement's `now()`), not with constants, in a
            // materialized `ended` that keeps them columns. Conditions on the task alone, a
            // status and a range of `lease_expires_at`, let the planner read the tasks from
            // the partial index of running ones, which also holds an entry for every task
            // finished since the last vacuum (tens of thousands in a drain), instead of
            // looking each up by its id (`bench/RESULTS.md`). The engine's own ends have no
            // range on the lease; in this form they measured no faster.
            LeaseGuard::Worker => Self {
                materialized: "MATERIALIZED ",
                carried: ", 'RUNNING'::text AS running, now() AS checked_at",
                secrets: ", $9::bytea[]",
                secret_column: ", secret",
                running: "e.running",
                condition:
                    "AND t.lease_expires_at > e.checked_at \
                    AND t.processing_started_at + t.timeout_ms * interval '1 millisecond' > e.checked_at \
                    AND EXISTS (SELECT 1 FROM task_attempts a WHERE a.task_id = e.task_id \
                                AND a.lease_token = e.lease_token AND a.lease_secret_hash = sha256(e.secret))",
            },
        }
    }
}

pub(super) fn finish_attempts_statement<'a>(
    planning: Planning,
    columns: &'a AttemptEndColumns<'a>,
    guard: LeaseGuard,
) -> BoxedSqlQuery<'a, Pg, SqlQuery> {
    let GuardSql {
        materialized,
        carried,
        secrets,
        secret_column,
        running,
        condition: guard_sql,
    } = GuardSql::of(guard);
    let statement = planning
        .statement(&format!(
            "WITH ended AS {materialized}( \
                 SELECT *{carried} FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], \
                                      $6::bigint[], $7::text[], $8::jsonb[]{secrets}) \
                     AS e(task_id, lease_token, status, retry_state, error, retry_in_ms, outcome, result{secret_column}) \
             ), finished AS ( \
                 UPDATE tasks t SET status = e.status, retry_state = e.retry_state, \
                     last_error = COALESCE(e.error, t.last_error), result = e.result, \
                     scheduled_for = CASE WHEN e.retry_in_ms IS NULL THEN t.scheduled_for \
                                          ELSE now() + e.retry_in_ms * interval '1 millisecond' END, \
                     completed_at = CASE WHEN e.status IN ('SUCCEEDED', 'FAILED', 'CANCELED') THEN now() END, \
                     lease_token = NULL, lease_expires_at = NULL, worker_id = NULL, updated_at = now() \
                 FROM ended e \
                 WHERE t.id = e.task_id AND t.status = {running} AND t.lease_token = e.lease_token {guard_sql} \
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
        .bind::<Array<Nullable<Jsonb>>, _>(&columns.results);
    match guard {
        LeaseGuard::Worker => statement.bind::<Array<Nullable<Bytea>>, _>(&columns.secrets),
        LeaseGuard::Held | LeaseGuard::Expired => statement,
    }
}
