//! The worker API's statements: leasing due tasks of one external type (one statement, under
//! the type's lock when it has a concurrency limit), reading what a lease finds, extending a
//! lease with a heartbeat, and releasing it. Completions and failures are attempt ends
//! (`finish_attempts` with `LeaseGuard::Worker`). Every write is guarded by the lease's
//! attempt still holding its task and its lease not having run out.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Bytea, Integer, Jsonb, Nullable, Text, Timestamptz};
use dtp_contract::{RetryState, TaskStatus};
use service_postgres::prepared::Prepared;
use std::time::Duration;

use super::claims::{due_of_type, under_type_lock, TypeClaim};
use super::millis;
use crate::domain::lease::LEASE_SECRET_BYTES;
use crate::domain::{AttemptOutcome, TaskState};
use crate::store::names::Named;

/// A task a worker has just leased.
#[derive(Debug, Clone, QueryableByName)]
pub struct LeasedTask {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Text)]
    pub task_type: String,
    #[diesel(sql_type = Jsonb)]
    pub payload: serde_json::Value,
    #[diesel(sql_type = Integer)]
    pub attempt_count: i32,
    #[diesel(sql_type = Integer)]
    pub max_attempts: i32,
    #[diesel(sql_type = Timestamptz)]
    pub created_at: DateTime<Utc>,
    #[diesel(sql_type = Timestamptz)]
    pub scheduled_for: DateTime<Utc>,
    #[diesel(sql_type = BigInt)]
    pub lease_token: i64,
    #[diesel(sql_type = Timestamptz)]
    pub lease_expires_at: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Jsonb>)]
    pub heartbeat_details: Option<serde_json::Value>,
    /// The lease's secret, handed to the worker once; the attempt keeps only its SHA-256.
    #[diesel(sql_type = Bytea)]
    pub secret: Vec<u8>,
}

/// Leases: as `claim_due_rows`, with a random secret per attempt (two v4 UUIDs, 244 random
/// bits from the server's strong random source) whose hash the attempt keeps.
const LEASE_SQL: &str = concat!(
    due_of_type!(),
    ", leased AS ( \
        UPDATE tasks t SET status = $4, attempt_count = t.attempt_count + 1, \
            processing_started_at = now(), completed_at = NULL, \
            lease_token = nextval('task_lease_tokens'), \
            lease_expires_at = now() + $2 * interval '1 millisecond', \
            worker_id = $3, updated_at = now() \
        WHERE t.id = ANY(ARRAY(SELECT id FROM due)) \
        RETURNING t.id, t.task_type, t.payload, t.attempt_count, t.max_attempts, t.created_at, \
                  t.scheduled_for, t.lease_token, t.lease_expires_at, t.heartbeat_details, \
                  t.worker_id, t.processing_started_at \
    ), secrets AS MATERIALIZED ( \
        SELECT leased.*, uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid()) AS secret FROM leased \
    ), opened AS ( \
        INSERT INTO task_attempts (lease_token, task_id, attempt, worker_id, started_at, due_at, lease_secret_hash) \
        SELECT lease_token, id, attempt_count, worker_id, processing_started_at, scheduled_for, sha256(secret) \
        FROM secrets \
    ) SELECT id, task_type, payload, attempt_count, max_attempts, created_at, scheduled_for, lease_token, \
             lease_expires_at, heartbeat_details, secret \
      FROM secrets ORDER BY id"
);

/// Leases up to `limit` due tasks of one type's queue to `worker_id`, within the type's
/// concurrency limit.
pub fn lease_due_tasks_of_type(
    conn: &mut PgConnection,
    claim: TypeClaim<'_>,
    worker_id: &str,
    limit: i64,
    lease: Duration,
    running: TaskStatus,
) -> QueryResult<Vec<LeasedTask>> {
    let concurrency = claim.concurrency.map(|n| i32::try_from(n).unwrap_or(i32::MAX));
    under_type_lock(conn, claim, |conn| {
        Prepared(
            diesel::sql_query(LEASE_SQL)
                .bind::<BigInt, _>(limit)
                .bind::<BigInt, _>(millis(lease))
                .bind::<Text, _>(worker_id)
                .bind::<Text, _>(running.as_str())
                .bind::<Text, _>(claim.task_type)
                .bind::<Nullable<Integer>, _>(concurrency),
        )
        .load(conn)
    })
}

/// What a call on a lease finds: the attempt it names and its task now.
#[derive(Debug, Clone, QueryableByName)]
pub struct LeaseRecord {
    #[diesel(sql_type = Nullable<Bytea>)]
    pub secret_hash: Option<Vec<u8>>,
    /// The attempt's recorded end; `None` while it is open.
    #[diesel(sql_type = Nullable<Text>)]
    outcome: Option<Named<AttemptOutcome>>,
    #[diesel(sql_type = Integer)]
    pub attempt: i32,
    #[diesel(sql_type = Text)]
    pub task_type: String,
    #[diesel(sql_type = Integer)]
    pub max_attempts: i32,
    #[diesel(sql_type = Text, deserialize_as = Named<RetryState>)]
    pub retry_state: RetryState,
    /// The lease ran out, or the attempt's time (`timeout_ms` since it started) is up.
    #[diesel(sql_type = Bool)]
    pub expired: bool,
}

impl LeaseRecord {
    /// The attempt's recorded end, read from its column.
    pub fn ended_as(&self) -> Option<AttemptOutcome> {
        self.outcome.as_ref().map(Named::get)
    }
}

/// The attempt `(task_id, lease_token)` and its task, if the attempt exists.
pub fn find_lease(
    conn: &mut PgConnection,
    task_id: i64,
    lease_token: i64,
) -> QueryResult<Option<LeaseRecord>> {
    Prepared(
        diesel::sql_query(
            "SELECT a.lease_secret_hash AS secret_hash, a.outcome, a.attempt, t.task_type, t.max_attempts, \
                    t.retry_state, \
                    (a.finished_at IS NULL AND (t.lease_expires_at <= now() \
                        OR t.processing_started_at + t.timeout_ms * interval '1 millisecond' <= now())) AS expired \
             FROM task_attempts a JOIN tasks t ON t.id = a.task_id \
             WHERE a.task_id = $1 AND a.lease_token = $2",
        )
        .bind::<BigInt, _>(task_id)
        .bind::<BigInt, _>(lease_token),
    )
    .get_result(conn)
    .optional()
}

/// The guard of every write on a worker's lease: its attempt still holds the task, the
/// lease has not run out, and the attempt's time is not up.
const LEASE_HELD: &str = "status = 'RUNNING' AND id = $1 AND lease_token = $2 AND lease_expires_at > now() \
     AND processing_started_at + timeout_ms * interval '1 millisecond' > now()";

#[derive(QueryableByName)]
struct Expiry {
    #[diesel(sql_type = Timestamptz)]
    lease_expires_at: DateTime<Utc>,
}

/// Extends a held lease by `lease` (never past the attempt's time limit) and keeps
/// `details`, when given, for the task's next attempt; the new expiry, or `None` when the
/// lease no longer holds its task.
pub fn extend_lease(
    conn: &mut PgConnection,
    task_id: i64,
    lease_token: i64,
    lease: Duration,
    details: Option<&serde_json::Value>,
) -> QueryResult<Option<DateTime<Utc>>> {
    let extended: Option<Expiry> = Prepared(
        diesel::sql_query(format!(
            "UPDATE tasks SET lease_expires_at = LEAST(now() + $3 * interval '1 millisecond', \
                 processing_started_at + timeout_ms * interval '1 millisecond'), \
                 heartbeat_details = COALESCE($4, heartbeat_details) \
             WHERE {LEASE_HELD} RETURNING lease_expires_at"
        ))
        .bind::<BigInt, _>(task_id)
        .bind::<BigInt, _>(lease_token)
        .bind::<BigInt, _>(millis(lease))
        .bind::<Nullable<Jsonb>, _>(details),
    )
    .get_result(conn)
    .optional()?;
    Ok(extended.map(|e| e.lease_expires_at))
}

/// Gives a held lease's task back: `next` (PENDING, due at once), the attempt not counted.
pub fn release_lease(
    conn: &mut PgConnection,
    task_id: i64,
    lease_token: i64,
    next: TaskState,
) -> QueryResult<bool> {
    let released = Prepared(
        diesel::sql_query(format!(
            "WITH released AS ( \
                 UPDATE tasks SET status = $3, retry_state = $4, attempt_count = attempt_count - 1, \
                     lease_token = NULL, lease_expires_at = NULL, worker_id = NULL, updated_at = now() \
                 WHERE {LEASE_HELD} RETURNING id \
             ) UPDATE task_attempts SET finished_at = now(), outcome = $5, error = 'released by its worker' \
               WHERE task_id = $1 AND lease_token = $2 AND EXISTS (SELECT 1 FROM released)"
        ))
        .bind::<BigInt, _>(task_id)
        .bind::<BigInt, _>(lease_token)
        .bind::<Text, _>(next.status.as_str())
        .bind::<Text, _>(next.retry_state.as_str())
        .bind::<Text, _>(AttemptOutcome::Released.as_str()),
    )
    .execute(conn)?;
    Ok(released == 1)
}

/// Tells every engine (and the workers waiting on them) that tasks may have become due:
/// released, rescued, or scheduled for a retry. New tasks announce themselves (a trigger).
pub fn announce_available(conn: &mut PgConnection) -> QueryResult<()> {
    diesel::sql_query("SELECT pg_notify('dtp_task_available', '')")
        .execute(conn)
        .map(|_| ())
}

/// The SHA-256 of a lease secret, as the attempt keeps it.
pub fn secret_hash(secret: &[u8; LEASE_SECRET_BYTES]) -> Vec<u8> {
    use sha2::Digest as _;
    sha2::Sha256::digest(secret).to_vec()
}
