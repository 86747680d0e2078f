//! A runtime for workers of external task types: register a typed handler per type, and
//! `WorkerRuntime::run` leases tasks with long-polls, runs up to `concurrency` at once,
//! heartbeats each lease every third of its length, stops a handler whose lease is lost
//! (its cancellation token fires), and completes or fails each lease by what its handler
//! returned. On shutdown it stops leasing, waits a grace period, and releases what is left.
//!
//! ```no_run
//! use dtp_client::worker::{ExternalTask, Job, JobError, WorkerRuntime};
//! use dtp_client::DtpClient;
//!
//! #[derive(serde::Deserialize)]
//! struct Resize { image: String, width: u32 }
//!
//! struct Resizer;
//!
//! impl ExternalTask for Resizer {
//!     const TYPE: &'static str = "resize-image";
//!     type Payload = Resize;
//!
//!     async fn run(&self, job: Job, resize: Resize) -> Result<Option<serde_json::Value>, JobError> {
//!         job.checkpoint(serde_json::json!({"started": resize.image}));
//!         Ok(Some(serde_json::json!({"resized": resize.image, "width": resize.width})))
//!     }
//! }
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let client = DtpClient::new("http://127.0.0.1:8080", std::time::Duration::from_secs(10))?;
//! let shutdown = tokio_util::sync::CancellationToken::new();
//! WorkerRuntime::new(client, "resizer-1").register(Resizer).concurrency(8).run(shutdown).await;
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use dtp_contract::{FailRequest, Lease, LeaseRequest};
use serde::de::DeserializeOwned;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::{DtpClient, DtpError};

/// Default number of tasks run at once.
pub const DEFAULT_CONCURRENCY: usize = 10;
/// Default wait of each lease request when nothing is due.
pub const DEFAULT_LONG_POLL: Duration = Duration::from_secs(5);
/// Default time running handlers get to finish at shutdown before their leases are released.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Most leases asked for in one request (the engine's limit).
const MAX_LEASES_PER_REQUEST: usize = 1_000;
/// Pause after a lease request failed, before the next.
const RETRY_LEASING_AFTER: Duration = Duration::from_secs(1);
/// How long a busy worker lets more slots free up before leasing for only a few of them.
const LEASE_GATHER: Duration = Duration::from_millis(2);
/// Shortest pause between two heartbeats of a lease (one that failed and is nearly out).
const MIN_HEARTBEAT_GAP: Duration = Duration::from_millis(50);

/// A task type whose tasks this worker runs.
pub trait ExternalTask: Send + Sync + 'static {
    /// The external type's name, as declared in the engine's types file.
    const TYPE: &'static str;
    /// What the payload must deserialize into; a task whose payload does not fails as not retryable.
    type Payload: DeserializeOwned + Send + 'static;

    /// Runs one attempt; `Ok(Some(value))` becomes the task's result (at most 64 KiB).
    fn run(
        &self,
        job: Job,
        payload: Self::Payload,
    ) -> impl Future<Output = Result<Option<serde_json::Value>, JobError>> + Send;
}

/// One leased attempt, as its handler sees it.
pub struct Job {
    pub task_id: i64,
    /// 1-based.
    pub attempt: i32,
    pub max_attempts: i32,
    /// What an earlier attempt last checkpointed, to resume from.
    pub heartbeat_details: Option<serde_json::Value>,
    /// Fires when the handler must stop: its lease was lost (canceled, expired, released) or
    /// the worker is shutting down past its grace. Long work should watch it.
    pub cancel: CancellationToken,
    checkpoint: Arc<Mutex<Option<serde_json::Value>>>,
}

impl Job {
    /// Sends `details` with the next heartbeat (or before the attempt's failure is reported);
    /// a retry of this task gets the last ones.
    pub fn checkpoint(&self, details: serde_json::Value) {
        *self.checkpoint.lock().unwrap_or_else(PoisonError::into_inner) = Some(details);
    }
}

/// Why an attempt failed, and whether to try again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct JobError {
    pub message: String,
    pub retryable: bool,
    pub retry_after: Option<Duration>,
}

impl JobError {
    /// Retried after the type's backoff.
    pub fn retry(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retryable: true,
            retry_after: None,
        }
    }

    /// Retried after `delay` (capped by the engine at the type's `backoff_max_ms`).
    pub fn retry_after(message: impl Into<String>, delay: Duration) -> Self {
        Self {
            retry_after: Some(delay),
            ..Self::retry(message)
        }
    }

    /// The task fails now.
    pub fn not_retryable(message: impl Into<String>) -> Self {
        Self {
            retryable: false,
            ..Self::retry(message)
        }
    }
}

type JobFuture = Pin<Box<dyn Future<Output = Result<Option<serde_json::Value>, JobError>> + Send>>;

/// A handler seen without its payload's type.
trait ErasedTask: Send + Sync {
    fn run(&self, job: Job, payload: serde_json::Value) -> JobFuture;
}

struct Typed<T>(Arc<T>);

impl<T: ExternalTask> ErasedTask for Typed<T> {
    fn run(&self, job: Job, payload: serde_json::Value) -> JobFuture {
        let task = Arc::clone(&self.0);
        Box::pin(async move {
            let payload = serde_json::from_value::<T::Payload>(payload).map_err(|e| {
                JobError::not_retryable(format!("the payload is not what {} takes: {e}", T::TYPE))
            })?;
            task.run(job, payload).await
        })
    }
}

/// A worker process's leasing loop and its handlers.
pub struct WorkerRuntime {
    client: DtpClient,
    worker_id: String,
    handlers: HashMap<String, Arc<dyn ErasedTask>>,
    concurrency: usize,
    long_poll: Duration,
    shutdown_grace: Duration,
}

/// The leases this worker runs, by token: how to stop each handler.
type Running = Arc<Mutex<HashMap<String, CancellationToken>>>;

impl WorkerRuntime {
    /// A worker named `worker_id` (recorded on every attempt it runs), leasing through `client`.
    pub fn new(client: DtpClient, worker_id: impl Into<String>) -> Self {
        Self {
            client,
            worker_id: worker_id.into(),
            handlers: HashMap::new(),
            concurrency: DEFAULT_CONCURRENCY,
            long_poll: DEFAULT_LONG_POLL,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
        }
    }

    /// Runs tasks of `T::TYPE` with `task`.
    pub fn register<T: ExternalTask>(mut self, task: T) -> Self {
        self.handlers
            .insert(T::TYPE.to_owned(), Arc::new(Typed(Arc::new(task))));
        self
    }

    /// Most tasks run at once (at least 1).
    pub fn concurrency(mut self, tasks: usize) -> Self {
        self.concurrency = tasks.max(1);
        self
    }

    /// How long each lease request waits when nothing is due (at most 30 s).
    pub fn long_poll(mut self, wait: Duration) -> Self {
        self.long_poll = wait.min(Duration::from_secs(30));
        self
    }

    /// How long running handlers may finish at shutdown before their leases are released.
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// Leases and runs tasks until `shutdown` fires, then shuts down gracefully.
    pub async fn run(self, shutdown: CancellationToken) {
        let runtime = Arc::new(self);
        let slots = Arc::new(Semaphore::new(runtime.concurrency));
        let running: Running = Arc::default();
        let mut attempts = JoinSet::new();
        let types: Vec<String> = runtime.handlers.keys().cloned().collect();
        tracing::info!(worker.id = %runtime.worker_id, ?types, concurrency = runtime.concurrency, "worker started");
        while !shutdown.is_cancelled() {
            let free = tokio::select! {
                permit = Arc::clone(&slots).acquire_many_owned(1) => permit,
                () = shutdown.cancelled() => break,
            };
            let Ok(first) = free else { break };
            // Attempts end one by one: when only a few slots are free among many busy ones,
            // more are about to free up, and one request can lease for all of them.
            let busy = runtime.concurrency - slots.available_permits() - 1;
            if slots.available_permits() + 1 < (runtime.concurrency / 4).max(1) && busy > 0 {
                tokio::time::sleep(LEASE_GATHER).await;
            }
            let mut permits = vec![first];
            while permits.len() < MAX_LEASES_PER_REQUEST {
                match Arc::clone(&slots).try_acquire_owned() {
                    Ok(permit) => permits.push(permit),
                    Err(_) => break,
                }
            }
            // The request runs to its end even when shutdown comes meanwhile: abandoning it
            // could leave leases granted to nobody until they expire. It ends within its wait.
            let ask = LeaseRequest {
                worker_id: runtime.worker_id.clone(),
                types: types.clone(),
                max: i32::try_from(permits.len()).ok(),
                wait_ms: i32::try_from(runtime.long_poll.as_millis()).ok(),
            };
            let leases = match runtime.client.lease(&ask).await {
                Ok(batch) => batch.leases,
                Err(e) => {
                    tracing::warn!(error = %e, "lease request failed; retrying");
                    drop(permits);
                    tokio::select! {
                        () = tokio::time::sleep(RETRY_LEASING_AFTER) => {}
                        () = shutdown.cancelled() => {}
                    }
                    continue;
                }
            };
            if shutdown.is_cancelled() {
                for lease in &leases {
                    runtime.give_back(&lease.lease_token).await;
                }
                break;
            }
            for (lease, permit) in leases.into_iter().zip(permits) {
                let cancel = CancellationToken::new();
                running
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(lease.lease_token.clone(), cancel.clone());
                attempts.spawn(Arc::clone(&runtime).attempt(lease, cancel, permit, Arc::clone(&running)));
            }
            while attempts.try_join_next().is_some() {}
        }
        runtime.stop(attempts, running).await;
    }

    /// Waits up to the grace for running attempts, then stops and releases the rest.
    async fn stop(&self, mut attempts: JoinSet<()>, running: Running) {
        let finished = tokio::time::timeout(self.shutdown_grace, async {
            while attempts.join_next().await.is_some() {}
        })
        .await;
        if finished.is_ok() {
            tracing::info!(worker.id = %self.worker_id, "worker stopped; no attempt left running");
            return;
        }
        let left: Vec<(String, CancellationToken)> = running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain()
            .collect();
        // Release first, then stop the handlers: their late reports are fenced off by then.
        for (token, cancel) in &left {
            self.give_back(token).await;
            cancel.cancel();
        }
        attempts.abort_all();
        tracing::info!(worker.id = %self.worker_id, released = left.len(), "worker stopped; released unfinished leases");
    }

    async fn give_back(&self, lease_token: &str) {
        if let Err(e) = self.client.release(lease_token).await {
            tracing::warn!(error = %e, "could not release a lease; it is rescued once it expires");
        }
    }

    /// Runs one leased attempt with its heartbeat, then reports its outcome.
    async fn attempt(
        self: Arc<Self>,
        lease: Lease,
        cancel: CancellationToken,
        permit: OwnedSemaphorePermit,
        running: Running,
    ) {
        let span = tracing::info_span!("attempt", task.id = lease.task_id, task.r#type = %lease.task_type, task.attempt = lease.attempt);
        let token = lease.lease_token.clone();
        self.run_and_report(lease, cancel).instrument(span).await;
        running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&token);
        drop(permit);
    }

    async fn run_and_report(&self, lease: Lease, cancel: CancellationToken) {
        let checkpoint: Arc<Mutex<Option<serde_json::Value>>> = Arc::default();
        let lost = Arc::new(AtomicBool::new(false));
        let heartbeat = tokio::spawn(heartbeat(
            self.client.clone(),
            lease.lease_token.clone(),
            lease.lease_expires_at,
            Arc::clone(&checkpoint),
            cancel.clone(),
            Arc::clone(&lost),
        ));
        let job = Job {
            task_id: lease.task_id,
            attempt: lease.attempt,
            max_attempts: lease.max_attempts,
            heartbeat_details: lease.heartbeat_details,
            cancel: cancel.clone(),
            checkpoint: Arc::clone(&checkpoint),
        };
        let outcome = match self.handlers.get(&lease.task_type) {
            Some(handler) => handler.run(job, lease.payload).await,
            None => Err(JobError::retry(format!(
                "this worker has no handler for {}",
                lease.task_type
            ))),
        };
        heartbeat.abort();
        // A checkpoint made since the last heartbeat still reaches the task's next attempt.
        let unsent = checkpoint.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let (Some(details), Err(_)) = (unsent, &outcome) {
            let sent = self.client.heartbeat(&lease.lease_token, Some(details)).await;
            if let Err(DtpError::LeaseLost { .. }) = sent {
                lost.store(true, Ordering::SeqCst);
            }
        }
        if lost.load(Ordering::SeqCst) {
            tracing::info!("lease lost while the handler ran; its outcome is discarded");
        } else {
            let reported = match outcome {
                Ok(result) => self.client.complete(&lease.lease_token, result).await,
                Err(error) => self.client.fail(&lease.lease_token, &failure(error)).await,
            };
            match reported {
                Ok(()) => tracing::debug!("attempt reported"),
                Err(DtpError::LeaseLost { reason, .. }) => {
                    tracing::info!(?reason, "lease lost before the report; its outcome is discarded")
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not report the attempt; it is retried once its lease expires")
                }
            }
        }
    }
}

fn failure(error: JobError) -> FailRequest {
    FailRequest {
        error: error.message,
        retryable: error.retryable,
        retry_after_ms: error
            .retry_after
            .map(|d| i32::try_from(d.as_millis()).unwrap_or(i32::MAX)),
    }
}

/// Extends the lease every third of its length, sending the latest checkpoint; stops the
/// handler when the lease is lost.
async fn heartbeat(
    client: DtpClient,
    lease_token: String,
    mut expires_at: DateTime<Utc>,
    checkpoint: Arc<Mutex<Option<serde_json::Value>>>,
    cancel: CancellationToken,
    lost: Arc<AtomicBool>,
) {
    loop {
        let left = (expires_at - Utc::now()).to_std().unwrap_or(Duration::ZERO);
        tokio::select! {
            () = tokio::time::sleep((left / 3).max(MIN_HEARTBEAT_GAP)) => {}
            () = cancel.cancelled() => return,
        }
        // The checkpoint is cleared only once sent: a heartbeat that fails, or is stopped
        // mid-flight as the handler ends, leaves it for the next one (or the final report).
        let details = checkpoint.lock().unwrap_or_else(PoisonError::into_inner).clone();
        match client.heartbeat(&lease_token, details.clone()).await {
            Ok(extended) => {
                expires_at = extended.lease_expires_at;
                let mut latest = checkpoint.lock().unwrap_or_else(PoisonError::into_inner);
                if *latest == details {
                    *latest = None;
                }
            }
            Err(DtpError::LeaseLost { reason, .. }) => {
                tracing::info!(?reason, "lease lost; stopping the handler");
                lost.store(true, Ordering::SeqCst);
                cancel.cancel();
                return;
            }
            Err(e) => tracing::warn!(error = %e, "heartbeat failed; trying again"),
        }
    }
}
