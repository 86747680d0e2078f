//! Claiming due tasks (one statement for a whole batch, attempt rows included), the
//! leases that fence their attempts, and what the rescuer and the shutdown path read and write.

use chrono::{DateTime, Utc};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use diesel::sql_types::{Array, BigInt, Integer, Nullable, Text};
use dtp_contract::{RetryState, TaskStatus};
use service_postgres::prepared::Prepared;
use std::time::Duration;

use super::plans::Planning;
use super::{millis, tasks, LeaseTokenRow};
use crate::domain::AttemptOutcome;
use crate::store::names::Named;

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
    /// Parsed here: a name the column's CHECK should have refused fails the read.
    #[diesel(deserialize_as = Named<RetryState>)]
    pub retry_state: RetryState,
    pub created_at: DateTime<Utc>,
    /// When this attempt fell due.
    pub scheduled_for: DateTime<Utc>,
    #[diesel(sql_type = BigInt)]
    pub lease_token: i64,
    /// Milliseconds from the task being due to this claim (the pickup latency).
    #[diesel(sql_type = diesel::sql_types::Double)]
    pub pickup_ms: f64,
}

/// Session settings of the connection the claim loop keeps to itself: the claim and the next
/// due read run on a plan made once: planning the claim afresh was a measurable share of every
/// pickup (`bench/RESULTS.md`, "What the profile shows"). A plan made once must not depend on the table's size when it was made: on an
/// empty table a sequential scan is cheapest, and a cached one would then read every row on
/// every claim as the table grew. Sequential scans are off for this connection (both
/// statements have an index for every step), and the claimed ids reach the update as one
/// array, looked up through the primary key whatever their number (a join with the CTE let
/// a generic plan walk the whole key). The plan check test reads that generic plan on an
/// empty table and on a long history.
pub const CLAIM_CONNECTION_SETTINGS: &str =
    "SET plan_cache_mode = force_generic_plan; SET enable_seqscan = off";

/// Claims up to `limit` due PENDING tasks of the shared queue for `worker_id` in one
/// statement and opens their attempts.
pub fn claim_due_tasks(
    conn: &mut PgConnection,
    worker_id: &str,
    limit: i64,
    lease: Duration,
    running: TaskStatus,
) -> QueryResult<Vec<ClaimedTask>> {
    Prepared(claim_statement(Planning::Run, worker_id, limit, lease, running)).load(conn)
}

/// Turns the ids in `due` into running attempts: `$2` lease in ms, `$3` worker id, `$4` the
/// RUNNING status. Shared by the claim of the shared queue and that of one type's queue.
macro_rules! claim_due_rows {
    () => {
        ", claimed AS ( \
            UPDATE tasks t SET status = $4, attempt_count = t.attempt_count + 1, \
                processing_started_at = now(), completed_at = NULL, \
                lease_token = nextval('task_lease_tokens'), \
                lease_expires_at = now() + $2 * interval '1 millisecond', \
                worker_id = $3, updated_at = now() \
            WHERE t.id = ANY(ARRAY(SELECT id FROM due)) \
            RETURNING t.id, t.task_type, t.payload, t.attempt_count, t.max_attempts, t.timeout_ms, \
                      t.retry_state, t.lease_token, t.worker_id, t.processing_started_at, t.scheduled_for, \
                      t.created_at \
        ), opened AS ( \
            INSERT INTO task_attempts (lease_token, task_id, attempt, worker_id, started_at, due_at) \
            SELECT lease_token, id, attempt_count, worker_id, processing_started_at, scheduled_for \
            FROM claimed \
        ) SELECT id, task_type, payload, attempt_count, max_attempts, timeout_ms, retry_state, lease_token, \
                 created_at, scheduled_for, \
                 GREATEST(EXTRACT(EPOCH FROM processing_started_at - scheduled_for) * 1000, 0)::float8 AS pickup_ms \
          FROM claimed ORDER BY id"
    };
}

/// The claim of the shared queue: `$1` most tasks, then as `claim_due_rows`.
pub(super) const CLAIM_SQL: &str = concat!(
    "WITH due AS ( \
        SELECT id FROM tasks WHERE status = 'PENDING' AND NOT type_queue AND scheduled_for <= now() \
        ORDER BY scheduled_for, id LIMIT $1 FOR UPDATE SKIP LOCKED \
    )",
    claim_due_rows!()
);

/// The due tasks of one type's queue: `$1` most, `$5` the type, `$6` its concurrency limit
/// (null: none). A limit is only safe under `TYPE_CLAIM_LOCK`: the count of running attempts
/// must not change between this statement's snapshot and its commit.
macro_rules! due_of_type {
    () => {
        "WITH due AS ( \
            SELECT id FROM tasks \
            WHERE status = 'PENDING' AND type_queue AND task_type = $5 AND scheduled_for <= now() \
            ORDER BY scheduled_for, id \
            LIMIT LEAST($1, GREATEST(0, COALESCE( \
                $6 - (SELECT count(*) FROM tasks WHERE status = 'RUNNING' AND task_type = $5), $1))) \
            FOR UPDATE SKIP LOCKED \
        )"
    };
}
pub(super) use due_of_type;

/// The claim of one type's queue: `due_of_type`, then as `claim_due_rows`.
pub(super) const TYPE_CLAIM_SQL: &str = concat!(due_of_type!(), claim_due_rows!());

/// Serializes the claims of one type's queue across every engine, for the rest of the
/// transaction; each claim then counts the running attempts its predecessors committed.
const TYPE_CLAIM_LOCK: &str = "SELECT pg_advisory_xact_lock(hashtextextended('dtp.type-claim:' || $1, 0))";

/// What a claim from one type's queue may take.
#[derive(Debug, Clone, Copy)]
pub struct TypeClaim<'a> {
    pub task_type: &'a str,
    /// Most attempts of the type running at once across every engine; `None`: no limit.
    pub concurrency: Option<u32>,
}

/// Claims up to `limit` due tasks of one type's queue, never more than its concurrency
/// limit allows given what runs already anywhere; one short transaction when limited.
pub fn claim_due_tasks_of_type(
    conn: &mut PgConnection,
    claim: TypeClaim<'_>,
    worker_id: &str,
    limit: i64,
    lease: Duration,
    running: TaskStatus,
) -> QueryResult<Vec<ClaimedTask>> {
    under_type_lock(conn, claim, |conn| {
        Prepared(type_claim_statement(
            Planning::Run,
            claim,
            worker_id,
            limit,
            lease,
            running,
        ))
        .load(conn)
    })
}

/// Runs `claim` on one type's queue: as it is without a limit; with one, in a transaction
/// that first takes the type's `TYPE_CLAIM_LOCK`.
pub(super) fn under_type_lock<T>(
    conn: &mut PgConnection,
    claim: TypeClaim<'_>,
    run: impl FnOnce(&mut PgConnection) -> QueryResult<T>,
) -> QueryResult<T> {
    if claim.concurrency.is_none() {
        return run(conn);
    }
    conn.transaction(|conn| {
        Prepared(diesel::sql_query(TYPE_CLAIM_LOCK).bind::<Text, _>(claim.task_type)).execute(conn)?;
        run(conn)
    })
}

pub(super) fn claim_statement(
    planning: Planning,
    worker_id: &str,
    limit: i64,
    lease: Duration,
    running: TaskStatus,
) -> BoxedSqlQuery<'_, Pg, SqlQuery> {
    planning
        .statement(CLAIM_SQL)
        .bind::<BigInt, _>(limit)
        .bind::<BigInt, _>(millis(lease))
        .bind::<Text, _>(worker_id)
        .bind::<Text, _>(running.as_str())
}

pub(super) fn type_claim_statement<'a>(
    planning: Planning,
    claim: TypeClaim<'a>,
    worker_id: &'a str,
    limit: i64,
    lease: Duration,
    running: TaskStatus,
) -> BoxedSqlQuery<'a, Pg, SqlQuery> {
    let concurrency = claim.concurrency.map(|n| i32::try_from(n).unwrap_or(i32::MAX));
    planning
        .statement(TYPE_CLAIM_SQL)
        .bind::<BigInt, _>(limit)
        .bind::<BigInt, _>(millis(lease))
        .bind::<Text, _>(worker_id)
        .bind::<Text, _>(running.as_str())
        .bind::<Text, _>(claim.task_type)
        .bind::<Nullable<Integer>, _>(concurrency)
}

#[derive(QueryableByName)]
struct DueIn {
    #[diesel(sql_type = Nullable<diesel::sql_types::Double>)]
    millis: Option<f64>,
}

/// Milliseconds until the next PENDING task of the shared queue falls due (negative when
/// one is due now), or `None` when nothing is pending; the first row of the claim's index.
pub fn next_due_in(conn: &mut PgConnection) -> QueryResult<Option<f64>> {
    let due: DueIn = Prepared(diesel::sql_query(
        "SELECT (EXTRACT(EPOCH FROM min(scheduled_for) - now()) * 1000)::float8 AS millis \
         FROM tasks WHERE status = 'PENDING' AND NOT type_queue",
    ))
    .get_result(conn)?;
    Ok(due.millis)
}

/// As `next_due_in`, for one type's queue.
pub fn next_due_of_type_in(conn: &mut PgConnection, task_type: &str) -> QueryResult<Option<f64>> {
    let due: DueIn = Prepared(
        diesel::sql_query(
            "SELECT (EXTRACT(EPOCH FROM min(scheduled_for) - now()) * 1000)::float8 AS millis \
             FROM tasks WHERE status = 'PENDING' AND type_queue AND task_type = $1",
        )
        .bind::<Text, _>(task_type),
    )
    .get_result(conn)?;
    Ok(due.millis)
}

/// Extends the leases that are still held; returns the tokens that still hold their task.
pub fn extend_leases(conn: &mut PgConnection, tokens: &[i64], lease: Duration) -> QueryResult<Vec<i64>> {
    if tokens.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<LeaseTokenRow> =
        Prepared(extend_leases_statement(Planning::Run, tokens, lease)).load(conn)?;
    Ok(rows.into_iter().map(|r| r.lease_token).collect())
}

pub(super) fn extend_leases_statement(
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
    Prepared(expired_leases_statement(Planning::Run, limit)).load(conn)
}

pub(super) fn expired_leases_statement(
    planning: Planning,
    limit: i64,
) -> BoxedSqlQuery<'static, Pg, SqlQuery> {
    planning
        .statement(
            "SELECT id, attempt_count, max_attempts, lease_token, worker_id FROM tasks \
             WHERE status = 'RUNNING' AND lease_expires_at < now() \
             ORDER BY lease_expires_at LIMIT $1",
        )
        .bind::<BigInt, _>(limit)
}
