//! The worker: claims due tasks in batches (one statement, `FOR UPDATE SKIP LOCKED`; types
//! with a concurrency limit from their own queues, see `type_queues`), runs each attempt
//! outside any transaction, and ends it with a lease-guarded write that the completer
//! batches with the other attempts ending at the same time.
//! A heartbeat keeps leases alive and stops attempts that were fenced off elsewhere.

pub(crate) mod attempt;
pub(crate) mod cleaner;
pub(crate) mod completer;
mod config;
pub(crate) mod listener;
pub(crate) mod rescuer;
mod type_queues;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use dtp_contract::TaskStatus;
use service_postgres::dedicated_connection::DedicatedConnection;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::change_feed::FeedSignal;
pub use cleaner::{Retention, TaskCleaner};
use completer::AttemptCompleter;
pub use config::WorkerConfig;
pub use listener::TaskEventListener;
pub use rescuer::TaskRescuer;
use type_queues::{TypeClaimRound, TypeQueues};

use crate::domain::{CLAIMED, RELEASED};
use crate::metrics::EngineMetrics;
use crate::store::tasks::{self as task_store, ClaimedTask, Tasks, TypeClaim};
use crate::store::StoreError;
use crate::task_types::TaskTypeRegistry;

/// How long a busy worker lets more slots free up before claiming for only a few of them.
const CLAIM_GATHER: Duration = Duration::from_millis(1);

/// Pause before looking again at a task that is due but was claimed elsewhere, ms.
const DUE_NOW_RECHECK_MS: f64 = 2.0;

/// Longest pause after the database failed a claim; the loop resumes by itself.
const MAX_ERROR_BACKOFF: Duration = Duration::from_secs(5);

/// One engine process's worker. Cheap to clone; clones share the same slots and attempts.
#[derive(Clone)]
pub struct Worker {
    inner: Arc<WorkerShared>,
}

struct WorkerShared {
    tasks: Tasks,
    /// The claim loop's own connection (see `CLAIM_CONNECTION_SETTINGS`).
    claims: DedicatedConnection,
    registry: Arc<TaskTypeRegistry>,
    /// The types this engine claims from their own queues (those with a concurrency limit).
    type_queues: TypeQueues,
    config: WorkerConfig,
    worker_id: String,
    metrics: Arc<EngineMetrics>,
    completer: AttemptCompleter,
    slots: Arc<Semaphore>,
    /// Attempts running in this process, by lease token.
    in_flight: Mutex<HashMap<i64, InFlightAttempt>>,
    /// Rung when new work may be due (a task was submitted here).
    work_available: Notify,
    /// Every waiter is woken when new work may be due: workers' long-polls for leases.
    announcements: Notify,
    /// Rung when a handler returns (its slot is free) and when an attempt's end is written.
    slot_freed: Notify,
    /// Wakes the change feed's readers when this process changed a task.
    feed: FeedSignal,
}

/// What one claim started, and when the next pending task falls due (ms from now, negative
/// when due already; `None` when nothing is pending or the claim filled every slot).
pub struct ClaimRound {
    pub started: Vec<JoinHandle<()>>,
    pub next_due_in_ms: Option<f64>,
}

/// How long a claim loop that found less than it could take may sleep: until the next
/// pending task (a retry, a `runAt`) falls due, and never longer than the poll interval.
/// New tasks and newly scheduled retries wake it earlier.
fn idle_wait(poll: Duration, next_due_in_ms: Option<f64>) -> Duration {
    match next_due_in_ms {
        // A task due now that the claim did not get is held by another engine's claim
        // for a moment: look again shortly rather than spin.
        Some(millis) => Duration::try_from_secs_f64(millis.max(DUE_NOW_RECHECK_MS) / 1_000.0)
            .unwrap_or(poll)
            .min(poll),
        None => poll,
    }
}

struct InFlightAttempt {
    task_id: i64,
    cancel: CancellationToken,
}

impl Worker {
    pub fn new(
        tasks: Tasks,
        registry: Arc<TaskTypeRegistry>,
        config: WorkerConfig,
        metrics: Arc<EngineMetrics>,
    ) -> Self {
        let worker_id = format!(
            "{}-{}-{:04x}",
            std::env::var("HOSTNAME").unwrap_or_else(|_| "dtp".into()),
            std::process::id(),
            rand::random::<u16>()
        );
        let slots = Arc::new(Semaphore::new(config.concurrency));
        let feed = FeedSignal::default();
        let completer = AttemptCompleter::for_engine(tasks.clone(), feed.clone());
        Self {
            inner: Arc::new(WorkerShared {
                claims: tasks.claim_connection(),
                tasks,
                type_queues: TypeQueues::new(registry.limited_engine_types(), Instant::now()),
                registry,
                config,
                worker_id,
                metrics,
                completer,
                slots,
                in_flight: Mutex::new(HashMap::new()),
                work_available: Notify::new(),
                announcements: Notify::new(),
                slot_freed: Notify::new(),
                feed,
            }),
        }
    }

    pub fn id(&self) -> &str {
        &self.inner.worker_id
    }

    pub fn config(&self) -> &WorkerConfig {
        &self.inner.config
    }

    /// What wakes the change feed's readers; told of every change this process makes.
    pub fn feed_signal(&self) -> &FeedSignal {
        &self.inner.feed
    }

    /// Wakes the claim loop at once instead of at the next poll, and every worker's
    /// long-poll waiting for a lease.
    pub fn notify_work_available(&self) {
        self.inner.type_queues.wake_all(Instant::now());
        self.inner.work_available.notify_one();
        self.inner.announcements.notify_waiters();
    }

    /// Resolves at the next `notify_work_available`; create it before looking for work, so
    /// that an announcement made in between is not missed.
    pub fn work_announced(&self) -> tokio::sync::futures::Notified<'_> {
        self.inner.announcements.notified()
    }

    /// A task was canceled through this process: count it and stop its attempt if it runs here.
    pub fn on_task_canceled(&self, task_id: i64, task_type: &str) {
        self.inner.feed.events_written();
        self.inner.metrics.cancels.inc();
        self.inner
            .metrics
            .task_finished(task_type, TaskStatus::Canceled.as_str());
        self.stop_attempts_of(task_id);
    }

    /// Worker slots of this process: (busy, total).
    pub fn slot_usage(&self) -> (usize, usize) {
        let total = self.inner.config.concurrency;
        (total.saturating_sub(self.inner.slots.available_permits()), total)
    }

    /// Tells this process's attempt of `task_id`, if any, to stop (its task was canceled).
    pub fn stop_attempts_of(&self, task_id: i64) {
        for attempt in self.lock_in_flight().values().filter(|a| a.task_id == task_id) {
            attempt.cancel.cancel();
        }
    }

    /// Number of attempts running in this process.
    pub fn attempts_in_flight(&self) -> usize {
        self.lock_in_flight().len()
    }

    /// Runs the claim loop and the heartbeat until `shutdown` fires, then shuts down gracefully.
    pub async fn run(self, shutdown: CancellationToken) {
        if self.inner.config.concurrency == 0 {
            tracing::info!("worker disabled (concurrency 0)");
            return;
        }
        tracing::info!(worker.id = %self.id(), concurrency = self.inner.config.concurrency, "worker started");
        let heartbeat = tokio::spawn(self.clone().heartbeat(shutdown.clone()));
        let mut error_backoff = self.inner.config.poll_interval;
        while !shutdown.is_cancelled() {
            let free = self.claimable();
            if free == 0 {
                tokio::select! {
                    () = self.inner.slot_freed.notified() => {}
                    () = shutdown.cancelled() => {}
                }
                continue;
            }
            // Attempts end in batches (see `completer`): when only a few slots are free among
            // many busy ones, more are about to free up, and one claim can fill them all.
            let claim_floor = (self.inner.config.concurrency / 4).max(1);
            let free = if free < claim_floor && self.attempts_in_flight() > 0 {
                tokio::select! {
                    () = tokio::time::sleep(CLAIM_GATHER) => {}
                    () = shutdown.cancelled() => {}
                }
                self.claimable()
            } else {
                free
            };
            match self.claim_and_start(free).await {
                Ok(round) => {
                    error_backoff = self.inner.config.poll_interval;
                    if round.started.len() == free {
                        continue; // Slots were the limit: more may be due right now.
                    }
                    let wait = idle_wait(self.inner.config.poll_interval, round.next_due_in_ms);
                    tokio::select! {
                        () = self.inner.work_available.notified() => {}
                        () = tokio::time::sleep(wait) => {}
                        () = shutdown.cancelled() => {}
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in_ms = error_backoff.as_millis() as u64, "claim failed");
                    tokio::select! {
                        () = tokio::time::sleep(error_backoff) => {}
                        () = shutdown.cancelled() => {}
                    }
                    error_backoff = (error_backoff * 2).min(MAX_ERROR_BACKOFF);
                }
            }
        }
        heartbeat.abort();
        self.release_after_grace().await;
    }

    /// How many tasks the next claim may take: one per free slot, as long as the attempts
    /// whose handlers are done but whose ends are still being written stay within one more
    /// round of slots (they hold leases and memory while the database is slow to commit).
    fn claimable(&self) -> usize {
        let concurrency = self.inner.config.concurrency;
        let free = self.inner.slots.available_permits();
        free.min((2 * concurrency).saturating_sub(self.attempts_in_flight()))
    }

    /// Claims up to `limit` due tasks (the shared queue first, then the limited types that
    /// are worth a claim) and starts an attempt for each. When fewer than `limit` were due,
    /// also reads (on the same connection) when the next pending task falls due; if that
    /// read fails, the claimed tasks still start.
    pub async fn claim_and_start(&self, limit: usize) -> Result<ClaimRound, StoreError> {
        let worker_id = self.inner.worker_id.clone();
        let lease = self.inner.config.lease;
        let limited = self.inner.type_queues.due(Instant::now());
        let (claimed, next_due_in_ms, type_rounds) = self
            .inner
            .claims
            .run(move |conn| {
                let mut claimed =
                    task_store::claim_due_tasks(conn, &worker_id, as_limit(limit), lease, CLAIMED)?;
                // The claim has committed: a failed read must not keep its tasks from starting
                // (they would wait for their leases to run out). Unknown means "sleep the poll".
                let next_due = if claimed.len() < limit {
                    task_store::next_due_in(conn).unwrap_or_else(|e| {
                        tracing::warn!(error = %e, "could not read when the next task falls due");
                        None
                    })
                } else {
                    None
                };
                let type_rounds = claim_limited_types(conn, &limited, &worker_id, limit, lease, &mut claimed);
                Ok((claimed, next_due, type_rounds))
            })
            .await?;
        let now = Instant::now();
        for (task_type, round) in &type_rounds {
            self.inner
                .type_queues
                .claimed(task_type, *round, now, self.inner.config.poll_interval);
        }
        let next_type_look = self
            .inner
            .type_queues
            .next_look_in(now)
            .map(|d| d.as_secs_f64() * 1_000.0);
        let next_due_in_ms = match (next_due_in_ms, next_type_look) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.inner.metrics.claims_per_poll.observe(claimed.len() as f64);
        if !claimed.is_empty() {
            self.inner.feed.events_written();
        }
        let mut started = Vec::with_capacity(claimed.len());
        for task in claimed {
            self.inner
                .metrics
                .pickup_latency
                .observe(task.pickup_ms / 1_000.0);
            let permit = Arc::clone(&self.inner.slots)
                .acquire_owned()
                .await
                .map_err(|_| StoreError::Unavailable("worker slots closed".into()))?;
            started.push(self.start_attempt(task, permit));
        }
        Ok(ClaimRound {
            started,
            next_due_in_ms,
        })
    }

    /// Runs every task that is due now to its end, returning how many attempts ran.
    /// Tests use it to drain the queue deterministically without the background loop.
    pub async fn run_due_tasks(&self) -> Result<usize, StoreError> {
        let mut ran = 0;
        loop {
            let free = self.inner.slots.available_permits().max(1);
            let started = self.claim_and_start(free).await?.started;
            if started.is_empty() {
                return Ok(ran);
            }
            ran += started.len();
            for handle in started {
                let _ = handle.await;
            }
        }
    }

    fn start_attempt(&self, task: ClaimedTask, permit: tokio::sync::OwnedSemaphorePermit) -> JoinHandle<()> {
        let cancel = CancellationToken::new();
        self.lock_in_flight().insert(
            task.lease_token,
            InFlightAttempt {
                task_id: task.id,
                cancel: cancel.clone(),
            },
        );
        let worker = self.clone();
        tokio::spawn(async move {
            let lease_token = task.lease_token;
            let task_type = task.task_type.clone();
            let shared = &worker.inner;
            attempt::run_attempt(shared, task, cancel, || {
                drop(permit);
                shared.slot_freed.notify_one();
            })
            .await;
            worker.lock_in_flight().remove(&lease_token);
            worker.inner.type_queues.attempt_ended(&task_type, Instant::now());
            worker.inner.slot_freed.notify_one();
        })
    }

    /// Extends the leases of running attempts every lease/3; stops those fenced off.
    async fn heartbeat(self, shutdown: CancellationToken) {
        let every = self.inner.config.lease / 3;
        loop {
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                () = shutdown.cancelled() => return,
            }
            let tokens: Vec<i64> = self.lock_in_flight().keys().copied().collect();
            if tokens.is_empty() {
                continue;
            }
            let lease = self.inner.config.lease;
            match self.inner.tasks.extend_leases(tokens.clone(), lease).await {
                Ok(held) => {
                    let in_flight = self.lock_in_flight();
                    for token in tokens.iter().filter(|t| !held.contains(t)) {
                        if let Some(attempt) = in_flight.get(token) {
                            tracing::info!(
                                task.id = attempt.task_id,
                                lease = token,
                                "attempt fenced off; stopping it"
                            );
                            attempt.cancel.cancel();
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, attempts = tokens.len(), "heartbeat failed"),
            }
        }
    }

    /// Waits up to the shutdown grace for running attempts, then gives the rest back.
    async fn release_after_grace(&self) {
        let deadline = tokio::time::Instant::now() + self.inner.config.shutdown_grace;
        while self.attempts_in_flight() > 0 {
            tokio::select! {
                () = self.inner.slot_freed.notified() => {}
                () = tokio::time::sleep_until(deadline) => break,
            }
        }
        let left: Vec<(i64, CancellationToken)> = self
            .lock_in_flight()
            .iter()
            .map(|(token, attempt)| (*token, attempt.cancel.clone()))
            .collect();
        if left.is_empty() {
            tracing::info!("worker stopped; no attempt left running");
            return;
        }
        let tokens: Vec<i64> = left.iter().map(|(t, _)| *t).collect();
        // Release first, then stop the handlers: their late writes are fenced off by then.
        let released = self.inner.tasks.release(tokens, RELEASED).await;
        self.inner.feed.events_written();
        for (_, cancel) in &left {
            cancel.cancel();
        }
        match released {
            Ok(n) => tracing::info!(released = n, "worker stopped; released unfinished attempts"),
            Err(e) => {
                tracing::warn!(error = %e, "could not release unfinished attempts; the rescuer will recover them")
            }
        }
    }

    fn lock_in_flight(&self) -> std::sync::MutexGuard<'_, HashMap<i64, InFlightAttempt>> {
        self.inner
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// A claim's `LIMIT`.
fn as_limit(slots: usize) -> i64 {
    i64::try_from(slots).unwrap_or(i64::MAX)
}

/// Claims from each limited type's queue with the slots the shared claim left, adding what
/// it got to `claimed`. Runs after the shared claim committed, so a failure here is logged
/// and the type is tried again at the next round.
fn claim_limited_types(
    conn: &mut diesel::PgConnection,
    limited: &[(String, u32)],
    worker_id: &str,
    limit: usize,
    lease: Duration,
    claimed: &mut Vec<ClaimedTask>,
) -> Vec<(String, TypeClaimRound)> {
    let mut rounds = Vec::with_capacity(limited.len());
    for (task_type, concurrency) in limited {
        let asked = limit.saturating_sub(claimed.len());
        if asked == 0 {
            break;
        }
        let claim = TypeClaim {
            task_type,
            concurrency: Some(*concurrency),
        };
        let got = match task_store::claim_due_tasks_of_type(
            conn,
            claim,
            worker_id,
            as_limit(asked),
            lease,
            CLAIMED,
        ) {
            Ok(got) => got,
            Err(e) => {
                tracing::warn!(error = %e, task.r#type = %task_type, "claim of a limited type failed");
                continue;
            }
        };
        let next_due_in_ms = if got.len() < asked {
            task_store::next_due_of_type_in(conn, task_type).unwrap_or(None)
        } else {
            None
        };
        rounds.push((
            task_type.clone(),
            TypeClaimRound {
                asked,
                got: got.len(),
                next_due_in_ms,
            },
        ));
        claimed.extend(got);
    }
    rounds
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLL: Duration = Duration::from_millis(250);

    #[test]
    fn an_idle_loop_sleeps_until_the_next_task_falls_due_within_the_poll_interval() {
        assert_eq!(idle_wait(POLL, None), POLL, "nothing pending: the fallback poll");
        assert_eq!(idle_wait(POLL, Some(40.0)), Duration::from_millis(40));
        assert_eq!(
            idle_wait(POLL, Some(60_000.0)),
            POLL,
            "a later task: never past the poll"
        );
    }

    #[test]
    fn a_task_due_now_but_held_elsewhere_is_looked_at_again_shortly() {
        let recheck = Duration::from_secs_f64(DUE_NOW_RECHECK_MS / 1_000.0);
        assert_eq!(idle_wait(POLL, Some(-5.0)), recheck);
        assert_eq!(idle_wait(POLL, Some(0.0)), recheck);
    }
}
