//! The `tasks` table (with the attempts written beside it). `Tasks` is what the rest of the
//! engine calls: one async function per thing done to tasks, named for it; how statements are
//! grouped (reads, submissions and attempt ends arriving together share one) is its own
//! business. Every write that follows a claim is guarded by the attempt's lease token and the
//! RUNNING status, so a superseded attempt's late write changes nothing. The claim loop runs
//! its statements on a connection of its own (`Tasks::claim_connection`); each file below
//! holds one family of statements.

mod attempt_ends;
mod claims;
mod grouped;
mod insert;
mod leases;
mod listing;
mod plans;
mod rows;

use std::time::Duration;

use dtp_contract::TaskStatus;
use service_postgres::dedicated_connection::DedicatedConnection;
use service_postgres::PgPool;

pub use attempt_ends::{finish_attempt, finish_attempts, AttemptEnd, LeaseGuard};
pub use claims::{
    claim_due_tasks, claim_due_tasks_of_type, extend_leases, find_expired_leases, next_due_in,
    next_due_of_type_in, release_attempts, ClaimedTask, ExpiredLease, TypeClaim, CLAIM_CONNECTION_SETTINGS,
};
pub use insert::{insert_each_task, insert_tasks, Inserted, KeyNamesAnotherTask};
pub use leases::{
    announce_available, extend_lease, find_lease, lease_due_tasks_of_type, release_lease, secret_hash,
    LeaseRecord, LeasedTask,
};
pub use listing::{list_tasks, TaskFilter};
pub use plans::{explain_claim_as_claim_loop, explain_cleanup, explain_hot_path, explain_listings};
pub(crate) use plans::{plan, PlanLine};
pub use rows::{
    assign_queues, cancel_task_if_in, count_by_status, delete_finished_tasks, find_task, find_tasks,
    types_with_listed_tasks, under_cleanup_lock, DeletedBatch, TaskRow,
};

use super::attempts::{self, AttemptRow};
use super::schema::tasks;
use super::{run, StoreError};
use crate::domain::{NewTask, TaskState};
use rows::{LeaseTokenRow, TASK_ROW_COLUMNS};

/// The engine's handle on its tasks. Cheap to clone; every clone shares the same groups.
#[derive(Clone)]
pub struct Tasks {
    pool: PgPool,
    groups: grouped::Groups,
}

impl Tasks {
    /// Starts the grouped statements on the current runtime.
    pub fn start(pool: PgPool) -> Self {
        Self {
            groups: grouped::Groups::start(&pool),
            pool,
        }
    }

    /// Task `id`, read with the other single reads waiting.
    pub async fn find(&self, id: i64) -> Result<Option<TaskRow>, StoreError> {
        self.groups.reads.submit(id).await
    }

    /// Task `id` and its attempts, oldest first; `None` when there is no such task.
    pub async fn find_with_attempts(
        &self,
        id: i64,
    ) -> Result<Option<(TaskRow, Vec<AttemptRow>)>, StoreError> {
        run(&self.pool, move |conn| {
            let Some(task) = find_task(conn, id)? else {
                return Ok(None);
            };
            Ok(Some((task, attempts::list_attempts(conn, id)?)))
        })
        .await
    }

    /// Inserts `task` with the submissions waiting beside it: the new row, or the existing
    /// task its idempotency key names.
    pub async fn submit(&self, task: NewTask) -> Result<Inserted, StoreError> {
        self.groups.submissions.submit(task).await
    }

    /// Inserts a batch all or nothing; the first task whose key names another task otherwise.
    pub async fn submit_batch(
        &self,
        tasks: Vec<NewTask>,
    ) -> Result<Result<Vec<Inserted>, KeyNamesAnotherTask>, StoreError> {
        run(&self.pool, move |conn| insert_tasks(conn, &tasks)).await
    }

    /// Up to `rows` tasks that `filter` selects, newest first.
    pub async fn list(&self, filter: TaskFilter, rows: i64) -> Result<Vec<TaskRow>, StoreError> {
        run(&self.pool, move |conn| list_tasks(conn, &filter, rows)).await
    }

    /// Moves task `id` to `next` (CANCELED) if it is still in `expected`: whether it did.
    pub async fn cancel_if_in(
        &self,
        id: i64,
        expected: TaskStatus,
        next: TaskState,
    ) -> Result<bool, StoreError> {
        run(&self.pool, move |conn| {
            cancel_task_if_in(conn, id, expected, next)
        })
        .await
    }

    /// Moves the pending tasks of each named type to the queue its settings now give it
    /// (`true`: the type's own); how many moved.
    pub async fn assign_queues(&self, queues: Vec<(String, bool)>) -> Result<usize, StoreError> {
        run(&self.pool, move |conn| assign_queues(conn, &queues)).await
    }

    /// A connection of its own for the claim loop, with the claim's planner settings.
    pub fn claim_connection(&self) -> DedicatedConnection {
        DedicatedConnection::new(self.pool.clone(), CLAIM_CONNECTION_SETTINGS)
    }

    /// Ends an attempt of the engine's own, with the other ends waiting: whether it still held
    /// its task (`false`: fenced off by a cancel, a rescue or a newer attempt).
    pub async fn finish(&self, end: AttemptEnd) -> Result<bool, StoreError> {
        self.groups.engine_ends.submit(end).await
    }

    /// As `finish`, for an attempt leased by a worker outside the engine (guarded by its
    /// lease's secret and expiry as well).
    pub async fn finish_leased(&self, end: AttemptEnd) -> Result<bool, StoreError> {
        self.groups.worker_ends.submit(end).await
    }

    /// Extends the leases of the engine's running attempts; the tokens still held.
    pub async fn extend_leases(&self, tokens: Vec<i64>, lease: Duration) -> Result<Vec<i64>, StoreError> {
        run(&self.pool, move |conn| extend_leases(conn, &tokens, lease)).await
    }

    /// Gives the engine's unfinished attempts back at shutdown: their tasks are `next` again
    /// at once, the attempts uncounted; how many.
    pub async fn release(&self, tokens: Vec<i64>, next: TaskStatus) -> Result<usize, StoreError> {
        run(&self.pool, move |conn| release_attempts(conn, &tokens, next)).await
    }

    /// Up to `limit` running attempts whose lease has run out.
    pub async fn expired_leases(&self, limit: i64) -> Result<Vec<ExpiredLease>, StoreError> {
        run(&self.pool, move |conn| find_expired_leases(conn, limit)).await
    }

    /// Ends an attempt whose lease ran out, unless it was renewed meanwhile: whether it did.
    pub async fn rescue(&self, end: AttemptEnd) -> Result<bool, StoreError> {
        run(&self.pool, move |conn| {
            finish_attempt(conn, &end, LeaseGuard::Expired)
        })
        .await
    }

    /// Tells every engine and waiting worker that tasks may be available.
    pub async fn announce_available(&self) -> Result<(), StoreError> {
        run(&self.pool, announce_available).await
    }

    /// Leases due tasks of each type in `claims` in turn (name, concurrency limit, lease) for
    /// `worker_id`, up to `max` in all, in one transaction per limited type.
    pub async fn lease_due(
        &self,
        claims: Vec<(String, Option<u32>, Duration)>,
        worker_id: String,
        max: usize,
        running: TaskStatus,
    ) -> Result<Vec<LeasedTask>, StoreError> {
        run(&self.pool, move |conn| {
            let mut leased: Vec<LeasedTask> = Vec::new();
            for (task_type, concurrency, lease) in &claims {
                let left = max.saturating_sub(leased.len());
                if left == 0 {
                    break;
                }
                let claim = TypeClaim {
                    task_type,
                    concurrency: *concurrency,
                };
                let limit = i64::try_from(left).unwrap_or(i64::MAX);
                leased.extend(lease_due_tasks_of_type(
                    conn, claim, &worker_id, limit, *lease, running,
                )?);
            }
            Ok(leased)
        })
        .await
    }

    /// Milliseconds until the next task of any of `task_types` falls due (negative: due now).
    pub async fn next_due_of_types(&self, task_types: Vec<String>) -> Result<Option<f64>, StoreError> {
        run(&self.pool, move |conn| {
            let mut earliest: Option<f64> = None;
            for name in &task_types {
                if let Some(ms) = next_due_of_type_in(conn, name)? {
                    earliest = Some(earliest.map_or(ms, |e| e.min(ms)));
                }
            }
            Ok(earliest)
        })
        .await
    }

    /// The attempt a worker's lease names, as the fencing checks need it.
    pub async fn find_lease(
        &self,
        task_id: i64,
        lease_token: i64,
    ) -> Result<Option<LeaseRecord>, StoreError> {
        run(&self.pool, move |conn| find_lease(conn, task_id, lease_token)).await
    }

    /// Extends a worker's lease and keeps its heartbeat `details`: the new expiry, or `None`
    /// when the lease no longer holds its task.
    pub async fn extend_lease(
        &self,
        task_id: i64,
        lease_token: i64,
        lease: Duration,
        details: Option<serde_json::Value>,
    ) -> Result<Option<chrono::DateTime<chrono::Utc>>, StoreError> {
        run(&self.pool, move |conn| {
            extend_lease(conn, task_id, lease_token, lease, details.as_ref())
        })
        .await
    }

    /// Gives a worker's lease back: the task is `next` at once, the attempt uncounted.
    pub async fn release_lease(
        &self,
        task_id: i64,
        lease_token: i64,
        next: TaskState,
    ) -> Result<bool, StoreError> {
        run(&self.pool, move |conn| {
            release_lease(conn, task_id, lease_token, next)
        })
        .await
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}
