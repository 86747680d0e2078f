//! `WorkerLeases`: the use cases of the worker API. Workers outside the engine lease due tasks
//! of external types (waiting for one when asked, woken by announcements of new work, never
//! by polling the table), heartbeat, and complete, fail or release them. Every call on a lease
//! proves it with the lease's secret and changes nothing once the lease is lost.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use dtp_contract::{
    CompleteRequest, FailRequest, HeartbeatRequest, Lease, LeaseLostReason, LeaseRequest, RetryState,
    TaskStatus,
};
use tokio_util::sync::CancellationToken;

use crate::domain::lease::{
    check_worker_json, lease_standing, LeaseAsk, LeaseRequestError, LeaseStanding, LeaseToken, WorkerFailure,
};
use crate::domain::task_result::check_kept;
use crate::domain::{transition, AttemptOutcome, TaskEvent, TaskState, CLAIMED};
use crate::metrics::{EngineMetrics, ReasonLabels, TypeLabels};
use crate::store::tasks::{self as task_store, LeaseRecord, LeasedTask, Tasks};
use crate::store::StoreError;
use crate::task_types::{Retry, TaskError, TaskTypeRegistry, TypeKind};
use crate::worker::attempt::{decide, AttemptFacts, HandlerResult};
use crate::worker::completer::AttemptCompleter;
use crate::worker::Worker;

/// Why a worker API call is refused.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// 422: a field out of range.
    #[error(transparent)]
    Invalid(#[from] LeaseRequestError),
    /// 422: a type that is not registered, or not external.
    #[error("{name:?} is {}; external types: {}", if *registered { "not an external task type" } else { "not a registered task type" }, external.join(", "))]
    NotExternal {
        name: String,
        /// Whether the type exists (as a handler or HTTP type).
        registered: bool,
        external: Vec<String>,
    },
    /// 404: a token the engine never handed out.
    #[error("no such lease")]
    NotFound,
    /// 409: the lease is no longer its task's current one; the worker must stop.
    #[error("{message}")]
    Lost {
        reason: LeaseLostReason,
        message: String,
    },
    /// 422: a result the task cannot keep; the attempt failed as not retryable.
    #[error("{0}")]
    ResultNotKept(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The worker API's service. Cheap to clone.
#[derive(Clone)]
pub struct WorkerLeases {
    tasks: Tasks,
    registry: Arc<TaskTypeRegistry>,
    /// The engine's worker, for its announcements of new work.
    worker: Worker,
    completer: AttemptCompleter,
    metrics: Arc<EngineMetrics>,
    /// The longest a lease request may wait (`DTP_LEASE_MAX_WAIT_MS`).
    max_wait_ms: i32,
    /// Fires at shutdown: waiting lease requests are answered empty.
    shutdown: CancellationToken,
}

/// One external type a lease request names, as the registry has it.
struct LeasedType {
    name: String,
    concurrency: Option<u32>,
    lease: Duration,
}

impl WorkerLeases {
    pub fn start(
        tasks: Tasks,
        registry: Arc<TaskTypeRegistry>,
        worker: Worker,
        metrics: Arc<EngineMetrics>,
        max_wait_ms: i32,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            shutdown,
            completer: AttemptCompleter::for_workers(tasks.clone(), worker.feed_signal().clone()),
            tasks,
            registry,
            worker,
            metrics,
            max_wait_ms,
        }
    }

    /// The longest wait a long-poll of this engine takes (`DTP_LEASE_MAX_WAIT_MS`), in ms.
    pub fn max_wait_ms(&self) -> i32 {
        self.max_wait_ms
    }

    /// `POST /leases`: up to `max` due tasks of the named types; with none due, waits up to
    /// `waitMs` for one (an empty answer when none comes). After each wait it leases only if
    /// `client_waits()`: a client gone meanwhile would receive nothing, and the tasks would be
    /// held until their leases expire.
    pub async fn lease(
        &self,
        request: LeaseRequest,
        client_waits: impl Fn() -> bool,
    ) -> Result<Vec<Lease>, LeaseError> {
        let ask = LeaseAsk::validate(request, self.max_wait_ms)?;
        let types = ask
            .types
            .iter()
            .map(|name| self.external_type(name))
            .collect::<Result<Vec<_>, _>>()?;
        let deadline = tokio::time::Instant::now() + ask.wait;
        let mut waited = false;
        loop {
            let announced = self.worker.work_announced();
            if waited && !client_waits() {
                tracing::debug!(worker.id = %ask.worker_id, "the worker left its long-poll");
                return Ok(Vec::new());
            }
            let leased = self.lease_due(&ask, &types).await?;
            if !leased.is_empty() {
                return Ok(leased);
            }
            let now = tokio::time::Instant::now();
            // At shutdown a waiting worker is answered at once, so that the server drains.
            if now >= deadline || self.shutdown.is_cancelled() {
                return Ok(Vec::new());
            }
            let wake_at = match self.next_due_in(&types).await? {
                Some(ms) if ms > 0.0 => now + Duration::from_secs_f64(ms / 1_000.0),
                // Due, but every type is at its limit: a slot frees when an attempt ends,
                // which another engine does not announce; look again at the poll interval.
                Some(_) => now + self.worker.config().poll_interval,
                None => deadline,
            };
            let _waiting = self.metrics.lease_polls_waiting.track();
            tokio::select! {
                () = announced => {}
                () = tokio::time::sleep_until(wake_at.min(deadline)) => {}
                () = self.shutdown.cancelled() => {}
            }
            waited = true;
        }
    }

    fn external_type(&self, name: &str) -> Result<LeasedType, LeaseError> {
        match self.registry.get(name) {
            Some(registered) => match registered.kind {
                TypeKind::External { lease } => Ok(LeasedType {
                    name: name.to_owned(),
                    concurrency: registered.settings.concurrency,
                    lease,
                }),
                _ => Err(self.not_external(name, true)),
            },
            None => Err(self.not_external(name, false)),
        }
    }

    fn not_external(&self, name: &str, registered: bool) -> LeaseError {
        let shown: String = name.chars().take(100).collect();
        LeaseError::NotExternal {
            name: shown,
            registered,
            external: self
                .registry
                .types()
                .filter(|t| matches!(t.kind, TypeKind::External { .. }))
                .map(|t| t.name.clone())
                .collect(),
        }
    }

    /// Leases what is due of each type in turn, up to `ask.max` in all.
    async fn lease_due(&self, ask: &LeaseAsk, types: &[LeasedType]) -> Result<Vec<Lease>, LeaseError> {
        let claims: Vec<(String, Option<u32>, Duration)> = types
            .iter()
            .map(|t| (t.name.clone(), t.concurrency, t.lease))
            .collect();
        let (worker_id, max) = (ask.worker_id.clone(), ask.max);
        let leased = self.tasks.lease_due(claims, worker_id, max, CLAIMED).await?;
        if !leased.is_empty() {
            self.worker.feed_signal().events_written();
        }
        Ok(leased
            .into_iter()
            .map(|task| self.granted(task, &ask.worker_id))
            .collect())
    }

    fn granted(&self, task: LeasedTask, worker_id: &str) -> Lease {
        self.metrics
            .leases_granted
            .get_or_create(&TypeLabels {
                r#type: task.task_type.clone(),
            })
            .inc();
        tracing::info!(task.id = task.id, task.r#type = %task.task_type, task.attempt = task.attempt_count, worker.id = %worker_id, "task leased");
        let mut secret = [0u8; crate::domain::lease::LEASE_SECRET_BYTES];
        let len = secret.len().min(task.secret.len());
        secret[..len].copy_from_slice(&task.secret[..len]);
        Lease {
            lease_token: LeaseToken {
                task_id: task.id,
                lease_token: task.lease_token,
                secret,
            }
            .encode(),
            lease_expires_at: task.lease_expires_at,
            task_id: task.id,
            task_type: task.task_type,
            attempt: task.attempt_count,
            max_attempts: task.max_attempts,
            payload: task.payload,
            created_at: task.created_at,
            scheduled_for: task.scheduled_for,
            heartbeat_details: task.heartbeat_details,
        }
    }

    /// Milliseconds until the next task of any of `types` falls due (negative: due now).
    async fn next_due_in(&self, types: &[LeasedType]) -> Result<Option<f64>, LeaseError> {
        let names: Vec<String> = types.iter().map(|t| t.name.clone()).collect();
        Ok(self.tasks.next_due_of_types(names).await?)
    }

    /// `POST /leases/{token}/heartbeat`: extends the lease and keeps `details`.
    pub async fn heartbeat(
        &self,
        token: &str,
        request: HeartbeatRequest,
    ) -> Result<DateTime<Utc>, LeaseError> {
        if let Some(details) = &request.details {
            check_worker_json("details", details)?;
        }
        let (token, record) = self.held(token).await?;
        let lease = self.lease_of(&record.task_type);
        let (task_id, lease_token) = (token.task_id, token.lease_token);
        let extended = self
            .tasks
            .extend_lease(task_id, lease_token, lease, request.details)
            .await?;
        match extended {
            Some(expires_at) => Ok(expires_at),
            None => Err(self.why_lost(&token).await),
        }
    }

    fn lease_of(&self, task_type: &str) -> Duration {
        match self.registry.get(task_type).map(|t| &t.kind) {
            Some(TypeKind::External { lease }) => *lease,
            _ => self.worker.config().lease,
        }
    }

    /// `POST /leases/{token}/complete`: the task SUCCEEDED with `result`.
    pub async fn complete(&self, token: &str, request: CompleteRequest) -> Result<(), LeaseError> {
        if let Some(refused) = request.result.as_ref().and_then(|r| check_kept(r).err()) {
            // The result is the task's own: another attempt would produce it again.
            let message = format!("the result {refused}");
            self.report(
                token,
                HandlerResult::Failed(TaskError::not_retryable(message.clone())),
            )
            .await?;
            return Err(LeaseError::ResultNotKept(format!(
                "{message}; the task failed as not retryable"
            )));
        }
        let token = LeaseToken::decode(token).ok_or(LeaseError::NotFound)?;
        let next = transition(
            TaskState::new(TaskStatus::Running, RetryState::None),
            TaskEvent::AttemptSucceeded,
        )
        .unwrap_or_else(|illegal| unreachable!("a running attempt may always succeed: {illegal}"));
        let end = task_store::AttemptEnd {
            task_id: token.task_id,
            lease_token: token.lease_token,
            next,
            outcome: AttemptOutcome::Succeeded,
            error: None,
            retry_in: None,
            result: request.result,
            lease_secret: Some(token.secret),
        };
        if self.completer.complete(end).await? {
            tracing::info!(task.id = token.task_id, "leased task completed");
            // Not announced: completions are many, and a slot freed under a type's limit is
            // found by waiting workers at their next look (see `lease`).
            return Ok(());
        }
        Err(self.why_lost(&token).await)
    }

    /// `POST /leases/{token}/fail`: the attempt failed; retried, or the task FAILED.
    pub async fn fail(&self, token: &str, request: FailRequest) -> Result<(), LeaseError> {
        let failure = WorkerFailure::validate(request)?;
        let retry = match (failure.retryable, failure.retry_after) {
            (false, _) => Retry::Never,
            (true, Some(delay)) => Retry::After(delay),
            (true, None) => Retry::Backoff,
        };
        let error = TaskError {
            message: failure.error,
            retry,
        };
        self.report(token, HandlerResult::Failed(error)).await
    }

    /// Writes the end of a failed attempt as the state machine decides it.
    async fn report(&self, token: &str, result: HandlerResult) -> Result<(), LeaseError> {
        let (token, record) = self.held(token).await?;
        let facts = AttemptFacts {
            task_id: token.task_id,
            lease_token: token.lease_token,
            attempt: record.attempt,
            max_attempts: record.max_attempts,
            retry_state: record.retry_state,
        };
        let retry = self
            .registry
            .get(&record.task_type)
            .map_or(self.worker.config().retry, |t| t.settings.retry);
        let mut end = decide(&facts, result, &retry, rand::random::<f64>());
        end.lease_secret = Some(token.secret);
        let next = end.next;
        if !self.completer.complete(end).await? {
            return Err(self.why_lost(&token).await);
        }
        tracing::info!(task.id = token.task_id, task.attempt = record.attempt, next = %next.status, retry_state = %next.retry_state, "leased attempt failed");
        self.after_end(
            token.task_id,
            &record.task_type,
            next.status == TaskStatus::Pending,
        )
        .await;
        Ok(())
    }

    /// `POST /leases/{token}/release`: the task is PENDING again at once, the attempt not counted.
    pub async fn release(&self, token: &str) -> Result<(), LeaseError> {
        let (token, record) = self.held(token).await?;
        let next = transition(
            TaskState::new(TaskStatus::Running, record.retry_state),
            TaskEvent::Release,
        )
        .unwrap_or_else(|illegal| unreachable!("a running attempt may always be released: {illegal}"));
        let (task_id, lease_token) = (token.task_id, token.lease_token);
        let released = self.tasks.release_lease(task_id, lease_token, next).await?;
        if !released {
            return Err(self.why_lost(&token).await);
        }
        tracing::info!(task.id = task_id, "leased task released");
        self.after_end(task_id, &record.task_type, true).await;
        Ok(())
    }

    /// After a failed or released attempt: workers waiting on any engine may lease the task
    /// again (due now, or at its retry), and here a slot under its type's limit is free.
    async fn after_end(&self, task_id: i64, task_type: &str, due_again: bool) {
        self.worker.feed_signal().events_written();
        if due_again {
            if let Err(e) = self.tasks.announce_available().await {
                tracing::warn!(task.id = task_id, error = %e, "could not announce a task due again");
            }
        }
        let limited = self
            .registry
            .get(task_type)
            .is_some_and(|t| t.settings.concurrency.is_some());
        if due_again || limited {
            self.worker.notify_work_available();
        }
    }

    /// The lease `token` names, with its attempt, if it still holds its task.
    async fn held(&self, token: &str) -> Result<(LeaseToken, LeaseRecord), LeaseError> {
        let token = LeaseToken::decode(token).ok_or(LeaseError::NotFound)?;
        let record = self.record(&token).await?;
        match lease_standing(record.ended_as(), record.expired) {
            LeaseStanding::Held => Ok((token, record)),
            LeaseStanding::Lost(reason) => Err(self.lost(&token, &record, reason)),
        }
    }

    /// The attempt `token` names, when the token's secret is the attempt's.
    async fn record(&self, token: &LeaseToken) -> Result<LeaseRecord, LeaseError> {
        let (task_id, lease_token) = (token.task_id, token.lease_token);
        let record = self
            .tasks
            .find_lease(task_id, lease_token)
            .await?
            .ok_or(LeaseError::NotFound)?;
        if record.secret_hash.as_deref() != Some(&task_store::secret_hash(&token.secret)[..]) {
            return Err(LeaseError::NotFound);
        }
        Ok(record)
    }

    /// Why a guarded write on `token`'s lease found it gone.
    async fn why_lost(&self, token: &LeaseToken) -> LeaseError {
        let record = match self.record(token).await {
            Ok(record) => record,
            Err(e) => return e,
        };
        let reason = match lease_standing(record.ended_as(), record.expired) {
            LeaseStanding::Lost(reason) => reason,
            // Held when read again: its time ran out between the write and this read.
            LeaseStanding::Held => LeaseLostReason::Expired,
        };
        self.lost(token, &record, reason)
    }

    fn lost(&self, token: &LeaseToken, record: &LeaseRecord, reason: LeaseLostReason) -> LeaseError {
        let reason_name = match reason {
            LeaseLostReason::Canceled => "CANCELED",
            LeaseLostReason::Expired => "EXPIRED",
            LeaseLostReason::Finished => "FINISHED",
            LeaseLostReason::Released => "RELEASED",
        };
        self.metrics
            .leases_lost
            .get_or_create(&ReasonLabels { reason: reason_name })
            .inc();
        let what = match reason {
            LeaseLostReason::Canceled => "its task was canceled",
            LeaseLostReason::Expired => "its lease expired",
            LeaseLostReason::Finished => "it was already completed or failed",
            LeaseLostReason::Released => "it was released",
        };
        tracing::info!(
            task.id = token.task_id,
            task.attempt = record.attempt,
            reason = reason_name,
            "call on a lost lease"
        );
        LeaseError::Lost {
            reason,
            message: format!(
                "the lease of attempt {} of task {} is lost: {what}; stop working on it",
                record.attempt, token.task_id
            ),
        }
    }
}
