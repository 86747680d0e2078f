//! One attempt: run the handler under its timeout and cancellation token, turn what
//! happened into the state machine's decision, and have it written (batched, guarded by
//! the lease) by the completer.

use std::time::Duration;

use dtp_contract::{RetryState, TaskStatus};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::completer::AttemptCompleter;
use super::WorkerShared;
use crate::domain::{transition, AttemptOutcome, RetryPolicy, TaskEvent, TaskState};
use crate::metrics::{TypeLabels, TypeOutcomeLabels};
use crate::store::tasks::{AttemptEnd, ClaimedTask};
use crate::store::StoreError;
use crate::task_types::{HandlerRegistry, TaskContext};

/// Pauses between tries of the final write while the database is unreachable.
const REPORT_RETRY_DELAYS: [Duration; 6] = [
    Duration::from_millis(100),
    Duration::from_millis(250),
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(5),
];

/// What the handler did, before the state machine weighs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandlerResult {
    Succeeded,
    Failed(String),
    TimedOut(Duration),
}

pub(super) async fn run_attempt(worker: &WorkerShared, task: ClaimedTask, cancel: CancellationToken) {
    let span = tracing::info_span!(
        "attempt",
        task.id = task.id,
        task.r#type = %task.task_type,
        task.attempt = task.attempt_count,
        lease = task.lease_token
    );
    async move {
        tracing::debug!("attempt started");
        let started = std::time::Instant::now();
        let result = run_handler(&worker.registry, &task, cancel).await;
        let end = decide(&task, &result, &worker.config.retry, rand::random::<f64>());
        worker
            .metrics
            .attempt_duration
            .get_or_create(&TypeOutcomeLabels {
                r#type: task.task_type.clone(),
                outcome: end.outcome.as_str().to_owned(),
            })
            .observe(started.elapsed().as_secs_f64());
        match &result {
            HandlerResult::Succeeded => tracing::info!("attempt succeeded"),
            HandlerResult::Failed(error) => tracing::info!(error = %error, next = %end.next.status, "attempt failed"),
            HandlerResult::TimedOut(after) => {
                tracing::info!(timeout_ms = after.as_millis() as u64, next = %end.next.status, "attempt timed out")
            }
        }
        let next = end.next;
        match report(&worker.completer, end).await {
            Ok(true) if next.status.is_terminal() => worker.metrics.task_finished(&task.task_type, next.status.as_str()),
            Ok(true) => {
                // The claim loop may be asleep until a later due time: let it see this retry's.
                worker.work_available.notify_one();
                worker
                    .metrics
                    .retries_scheduled
                    .get_or_create(&TypeLabels {
                        r#type: task.task_type.clone(),
                    })
                    .inc();
            }
            Ok(false) => tracing::info!("attempt was fenced off (canceled or rescued); its result is discarded"),
            Err(e) => tracing::warn!(error = %e, "could not record the attempt's end; the rescuer will recover the task"),
        }
    }
    .instrument(span)
    .await;
}

async fn run_handler(
    registry: &HandlerRegistry,
    task: &ClaimedTask,
    cancel: CancellationToken,
) -> HandlerResult {
    let Some(handler) = registry.get(&task.task_type) else {
        return HandlerResult::Failed(format!("no handler for task type {:?}", task.task_type));
    };
    let timeout = Duration::from_millis(u64::try_from(task.timeout_ms).unwrap_or(1));
    let ctx = TaskContext {
        task_id: task.id,
        attempt: task.attempt_count,
        payload: task.payload.clone(),
        cancel: cancel.clone(),
    };
    // Its own tokio task, so that a panic fails only this attempt.
    let mut handle = tokio::spawn(handler.run(ctx));
    tokio::select! {
        joined = &mut handle => match joined {
            Ok(Ok(())) => HandlerResult::Succeeded,
            Ok(Err(e)) => HandlerResult::Failed(e.0),
            Err(e) if e.is_panic() => HandlerResult::Failed(format!("handler panicked: {}", panic_message(e.into_panic()))),
            Err(_) => HandlerResult::Failed("handler was aborted".into()),
        },
        () = tokio::time::sleep(timeout) => {
            cancel.cancel();
            handle.abort();
            HandlerResult::TimedOut(timeout)
        }
    }
}

fn panic_message(panic: Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".into())
}

/// The state machine's verdict on a finished attempt; `jitter` in [0, 1] spreads retries.
pub fn decide(task: &ClaimedTask, result: &HandlerResult, retry: &RetryPolicy, jitter: f64) -> AttemptEnd {
    let retry_state = RetryState::parse(&task.retry_state).unwrap_or(RetryState::None);
    let running = TaskState::new(TaskStatus::Running, retry_state);
    let (event, outcome, error) = match result {
        HandlerResult::Succeeded => (TaskEvent::AttemptSucceeded, AttemptOutcome::Succeeded, None),
        HandlerResult::Failed(error) => (
            TaskEvent::AttemptFailed {
                attempt: task.attempt_count,
                max_attempts: task.max_attempts,
            },
            AttemptOutcome::Failed,
            Some(error.clone()),
        ),
        HandlerResult::TimedOut(after) => (
            TaskEvent::AttemptFailed {
                attempt: task.attempt_count,
                max_attempts: task.max_attempts,
            },
            AttemptOutcome::TimedOut,
            Some(format!("attempt timed out after {} ms", after.as_millis())),
        ),
    };
    // A claimed task is RUNNING, where all three events are legal.
    let next =
        transition(running, event).unwrap_or(TaskState::new(TaskStatus::Failed, RetryState::Exhausted));
    let retry_in =
        (next.retry_state == RetryState::RetryScheduled).then(|| retry.delay(task.attempt_count, jitter));
    AttemptEnd {
        task_id: task.id,
        lease_token: task.lease_token,
        next,
        outcome,
        error,
        retry_in,
    }
}

/// Writes the attempt's end (batched with others), retrying while the database is unreachable.
async fn report(completer: &AttemptCompleter, end: AttemptEnd) -> Result<bool, StoreError> {
    let mut delays = REPORT_RETRY_DELAYS.iter();
    loop {
        match completer.complete(end.clone()).await {
            Err(StoreError::Unavailable(reason)) => match delays.next() {
                Some(delay) => {
                    tracing::warn!(error = %reason, "database unavailable while recording the attempt; retrying");
                    tokio::time::sleep(*delay).await;
                }
                None => return Err(StoreError::Unavailable(reason)),
            },
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claimed(attempt: i32, max: i32) -> ClaimedTask {
        ClaimedTask {
            id: 7,
            task_type: "demo".into(),
            payload: serde_json::Value::Null,
            attempt_count: attempt,
            max_attempts: max,
            timeout_ms: 1_000,
            retry_state: "NONE".into(),
            lease_token: 42,
            pickup_ms: 0.0,
        }
    }

    fn policy() -> RetryPolicy {
        RetryPolicy {
            base: Duration::from_millis(100),
            max: Duration::from_secs(10),
        }
    }

    struct Panics;
    impl crate::task_types::TaskHandler for Panics {
        fn task_type(&self) -> &'static str {
            "demo"
        }
        fn run(&self, _ctx: TaskContext) -> crate::task_types::HandlerFuture {
            Box::pin(async { panic!("handler bug") })
        }
    }

    #[tokio::test]
    async fn a_panicking_handler_fails_its_attempt_only() {
        let mut registry = HandlerRegistry::default();
        registry.register(Panics);
        let result = run_handler(&registry, &claimed(1, 3), CancellationToken::new()).await;
        assert_eq!(
            result,
            HandlerResult::Failed("handler panicked: handler bug".into())
        );
    }

    #[tokio::test]
    async fn a_slow_handler_is_stopped_at_its_timeout() {
        let registry = HandlerRegistry::with_builtin_types();
        let mut task = claimed(1, 3);
        task.task_type = "demo-slow".into();
        task.payload = serde_json::json!({"sleepMs": 60_000});
        task.timeout_ms = 20;
        let cancel = CancellationToken::new();
        let result = run_handler(&registry, &task, cancel.clone()).await;
        assert_eq!(result, HandlerResult::TimedOut(Duration::from_millis(20)));
        assert!(cancel.is_cancelled(), "the handler was told to stop");
    }

    #[test]
    fn success_completes_without_retry() {
        let end = decide(&claimed(1, 3), &HandlerResult::Succeeded, &policy(), 0.5);
        assert_eq!(
            end.next,
            TaskState::new(TaskStatus::Succeeded, RetryState::Completed)
        );
        assert_eq!(end.outcome, AttemptOutcome::Succeeded);
        assert_eq!(end.retry_in, None);
        assert_eq!((end.task_id, end.lease_token), (7, 42));
    }

    #[test]
    fn failure_before_the_last_attempt_schedules_a_retry_with_backoff() {
        let end = decide(
            &claimed(2, 3),
            &HandlerResult::Failed("boom".into()),
            &policy(),
            1.0,
        );
        assert_eq!(
            end.next,
            TaskState::new(TaskStatus::Pending, RetryState::RetryScheduled)
        );
        assert_eq!(end.retry_in, Some(Duration::from_millis(200)));
        assert_eq!(end.error.as_deref(), Some("boom"));
    }

    #[test]
    fn failure_or_timeout_of_the_last_attempt_exhausts_the_task() {
        let end = decide(
            &claimed(3, 3),
            &HandlerResult::Failed("boom".into()),
            &policy(),
            0.0,
        );
        assert_eq!(
            end.next,
            TaskState::new(TaskStatus::Failed, RetryState::Exhausted)
        );
        assert_eq!(end.retry_in, None);
        let end = decide(
            &claimed(1, 1),
            &HandlerResult::TimedOut(Duration::from_millis(5)),
            &policy(),
            0.0,
        );
        assert_eq!(end.outcome, AttemptOutcome::TimedOut);
        assert_eq!(end.error.as_deref(), Some("attempt timed out after 5 ms"));
        assert_eq!(end.next.status, TaskStatus::Failed);
    }
}
