//! One attempt: run the handler under its timeout and cancellation token, turn what
//! happened into the state machine's decision, and have it written (batched, guarded by
//! the lease) by the completer.

use std::sync::Arc;
use std::time::Duration;

use dtp_contract::{RetryState, TaskStatus};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::completer::AttemptCompleter;
use super::WorkerShared;
use crate::domain::task_result::check_kept;
use crate::domain::{transition, AttemptOutcome, RetryPolicy, TaskEvent, TaskState};
use crate::metrics::{TypeLabels, TypeOutcomeLabels};
use crate::store::tasks::{AttemptEnd, ClaimedTask};
use crate::store::StoreError;
use crate::task_types::{Retry, TaskContext, TaskError, TaskHandler, TaskOutput};

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
    Succeeded(TaskOutput),
    Failed(TaskError),
    TimedOut(Duration),
}

/// Runs `task`'s attempt to its recorded end. `handler_done` is called as soon as the handler
/// has returned, before its end is written: the slot is free then, while the write joins the
/// next group (the task stays RUNNING, its lease held, until the write commits).
pub(super) async fn run_attempt(
    worker: &WorkerShared,
    task: ClaimedTask,
    cancel: CancellationToken,
    handler_done: impl FnOnce(),
) {
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
        let registered = worker.registry.get(&task.task_type);
        let handler = registered.and_then(|t| t.handler.clone());
        let result = run_handler(handler, &task, cancel).await;
        handler_done();
        let retry = registered.map_or(worker.config.retry, |t| t.settings.retry);
        let end = decide(&AttemptFacts::from(&task), result, &retry, rand::random::<f64>());
        worker
            .metrics
            .attempt_duration
            .get_or_create(&TypeOutcomeLabels {
                r#type: task.task_type.clone(),
                outcome: end.outcome.as_str().to_owned(),
            })
            .observe(started.elapsed().as_secs_f64());
        match &end.error {
            None => tracing::info!("attempt succeeded"),
            Some(error) => tracing::info!(error = %error, outcome = end.outcome.as_str(), next = %end.next.status, retry_state = %end.next.retry_state, "attempt failed"),
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

/// The context a handler gets for the attempt `task` opened.
fn context(task: &ClaimedTask, cancel: CancellationToken) -> TaskContext {
    TaskContext {
        task_id: task.id,
        task_type: task.task_type.clone(),
        attempt: task.attempt_count,
        max_attempts: task.max_attempts,
        payload: task.payload.clone(),
        created_at: task.created_at,
        scheduled_for: task.scheduled_for,
        cancel,
    }
}

async fn run_handler(
    handler: Option<Arc<dyn TaskHandler>>,
    task: &ClaimedTask,
    cancel: CancellationToken,
) -> HandlerResult {
    let Some(handler) = handler else {
        return HandlerResult::Failed(TaskError::retry(format!(
            "no handler for task type {:?} in this engine",
            task.task_type
        )));
    };
    let timeout = Duration::from_millis(u64::try_from(task.timeout_ms).unwrap_or(1));
    // Its own tokio task, so that a panic fails only this attempt.
    let mut handle = tokio::spawn(handler.run(context(task, cancel.clone())));
    tokio::select! {
        joined = &mut handle => match joined {
            Ok(Ok(output)) => HandlerResult::Succeeded(output),
            Ok(Err(e)) => HandlerResult::Failed(e),
            Err(e) if e.is_panic() => HandlerResult::Failed(TaskError::retry(format!("handler panicked: {}", panic_message(e.into_panic())))),
            Err(_) => HandlerResult::Failed(TaskError::retry("handler was aborted")),
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

/// What the verdict on a finished attempt depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptFacts {
    pub task_id: i64,
    pub lease_token: i64,
    /// 1-based number of the attempt.
    pub attempt: i32,
    pub max_attempts: i32,
    pub retry_state: RetryState,
}

impl From<&ClaimedTask> for AttemptFacts {
    fn from(task: &ClaimedTask) -> Self {
        Self {
            task_id: task.id,
            lease_token: task.lease_token,
            attempt: task.attempt_count,
            max_attempts: task.max_attempts,
            retry_state: task.retry_state,
        }
    }
}

/// The state machine's verdict on a finished attempt, under the type's retry policy;
/// `jitter` in [0, 1] spreads retries.
pub fn decide(task: &AttemptFacts, result: HandlerResult, retry: &RetryPolicy, jitter: f64) -> AttemptEnd {
    let running = TaskState::new(TaskStatus::Running, task.retry_state);
    let failed = TaskEvent::AttemptFailed {
        attempt: task.attempt,
        max_attempts: task.max_attempts,
    };
    let not_retryable = |error: String| {
        (
            TaskEvent::AttemptFailedNotRetryable,
            AttemptOutcome::Failed,
            Some(error),
            None,
            None,
        )
    };
    let (event, outcome, error, asked_delay, output) = match result {
        HandlerResult::Succeeded(output) => match output.as_ref().map(check_kept) {
            Some(Err(refused)) => not_retryable(format!("the result {refused}")),
            _ => (
                TaskEvent::AttemptSucceeded,
                AttemptOutcome::Succeeded,
                None,
                None,
                output,
            ),
        },
        HandlerResult::Failed(TaskError { message, retry }) => match retry {
            Retry::Never => not_retryable(message),
            Retry::After(delay) => (failed, AttemptOutcome::Failed, Some(message), Some(delay), None),
            Retry::Backoff => (failed, AttemptOutcome::Failed, Some(message), None, None),
        },
        HandlerResult::TimedOut(after) => (
            failed,
            AttemptOutcome::TimedOut,
            Some(format!("timed out after {} ms", after.as_millis())),
            None,
            None,
        ),
    };
    // A claimed task is RUNNING, where all of these events are legal.
    let next = transition(running, event).unwrap_or_else(|illegal| {
        // Unreachable while the state machine allows these events on RUNNING; if it ever
        // does not, the task ends FAILED rather than staying RUNNING, and it is said.
        tracing::error!(task.id = task.task_id, %illegal, "illegal transition: the task is failed");
        TaskState::new(TaskStatus::Failed, RetryState::Exhausted)
    });
    let retry_in = (next.retry_state == RetryState::RetryScheduled).then(|| match asked_delay {
        Some(delay) => delay.min(retry.max),
        None => retry.delay(task.attempt, jitter),
    });
    AttemptEnd {
        task_id: task.task_id,
        lease_token: task.lease_token,
        next,
        outcome,
        error,
        retry_in,
        result: output,
        lease_secret: None,
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
    use serde_json::json;

    fn claimed(attempt: i32, max: i32) -> ClaimedTask {
        ClaimedTask {
            id: 7,
            task_type: "demo".into(),
            payload: serde_json::Value::Null,
            attempt_count: attempt,
            max_attempts: max,
            timeout_ms: 1_000,
            retry_state: RetryState::None,
            created_at: chrono::Utc::now(),
            scheduled_for: chrono::Utc::now(),
            lease_token: 42,
            pickup_ms: 0.0,
        }
    }

    fn facts(attempt: i32, max: i32) -> AttemptFacts {
        AttemptFacts::from(&claimed(attempt, max))
    }

    fn policy() -> RetryPolicy {
        RetryPolicy {
            base: Duration::from_millis(100),
            max: Duration::from_secs(10),
        }
    }

    struct Panics;
    impl TaskHandler for Panics {
        fn run(&self, _ctx: TaskContext) -> crate::task_types::HandlerFuture {
            Box::pin(async { panic!("handler bug") })
        }
    }

    /// Waits until told to stop, as a handler that minds its cancellation token does.
    struct WaitsForCancel;
    impl TaskHandler for WaitsForCancel {
        fn run(&self, ctx: TaskContext) -> crate::task_types::HandlerFuture {
            Box::pin(async move {
                ctx.cancel.cancelled().await;
                Err(TaskError::retry("stopped"))
            })
        }
    }

    #[tokio::test]
    async fn a_panicking_handler_fails_its_attempt_only() {
        let result = run_handler(Some(Arc::new(Panics)), &claimed(1, 3), CancellationToken::new()).await;
        assert_eq!(
            result,
            HandlerResult::Failed(TaskError::retry("handler panicked: handler bug"))
        );
    }

    #[tokio::test]
    async fn a_slow_handler_is_stopped_at_its_timeout() {
        let mut task = claimed(1, 3);
        task.timeout_ms = 20;
        let cancel = CancellationToken::new();
        let result = run_handler(Some(Arc::new(WaitsForCancel)), &task, cancel.clone()).await;
        assert_eq!(result, HandlerResult::TimedOut(Duration::from_millis(20)));
        assert!(cancel.is_cancelled(), "the handler was told to stop");
    }

    #[tokio::test]
    async fn a_type_without_a_handler_here_fails_its_attempt() {
        let result = run_handler(None, &claimed(1, 3), CancellationToken::new()).await;
        assert_eq!(
            result,
            HandlerResult::Failed(TaskError::retry(
                "no handler for task type \"demo\" in this engine"
            ))
        );
    }

    #[test]
    fn success_completes_without_retry_and_keeps_the_result() {
        let end = decide(
            &facts(1, 3),
            HandlerResult::Succeeded(Some(json!({"ok": 1}))),
            &policy(),
            0.5,
        );
        assert_eq!(
            end.next,
            TaskState::new(TaskStatus::Succeeded, RetryState::Completed)
        );
        assert_eq!(end.outcome, AttemptOutcome::Succeeded);
        assert_eq!(end.retry_in, None);
        assert_eq!(end.result, Some(json!({"ok": 1})));
        assert_eq!((end.task_id, end.lease_token), (7, 42));
    }

    #[test]
    fn a_result_over_64_kib_fails_the_task_for_good() {
        let big = json!("x".repeat(dtp_contract::MAX_RESULT_BYTES));
        let end = decide(&facts(1, 3), HandlerResult::Succeeded(Some(big)), &policy(), 0.5);
        assert_eq!(
            end.next,
            TaskState::new(TaskStatus::Failed, RetryState::NotRetryable)
        );
        assert_eq!(end.result, None);
        assert!(end
            .error
            .unwrap()
            .starts_with("the result is 65538 bytes of JSON"));
    }

    #[test]
    fn failure_before_the_last_attempt_schedules_a_retry_with_backoff() {
        let end = decide(
            &facts(2, 3),
            HandlerResult::Failed(TaskError::retry("boom")),
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
    fn an_asked_delay_replaces_the_backoff_up_to_its_cap() {
        let after = |delay| {
            decide(
                &facts(1, 3),
                HandlerResult::Failed(TaskError::retry_after("busy", delay)),
                &policy(),
                1.0,
            )
            .retry_in
        };
        assert_eq!(after(Duration::from_secs(3)), Some(Duration::from_secs(3)));
        assert_eq!(after(Duration::from_secs(600)), Some(Duration::from_secs(10)));
        let last = decide(
            &facts(3, 3),
            HandlerResult::Failed(TaskError::retry_after("busy", Duration::from_secs(1))),
            &policy(),
            1.0,
        );
        assert_eq!(
            last.next,
            TaskState::new(TaskStatus::Failed, RetryState::Exhausted)
        );
    }

    #[test]
    fn a_failure_no_retry_mends_fails_the_task_at_once() {
        let end = decide(
            &facts(1, 5),
            HandlerResult::Failed(TaskError::not_retryable("HTTP 400 from x")),
            &policy(),
            1.0,
        );
        assert_eq!(
            end.next,
            TaskState::new(TaskStatus::Failed, RetryState::NotRetryable)
        );
        assert_eq!(end.outcome, AttemptOutcome::Failed);
        assert_eq!(end.retry_in, None);
    }

    #[test]
    fn failure_or_timeout_of_the_last_attempt_exhausts_the_task() {
        let end = decide(
            &facts(3, 3),
            HandlerResult::Failed(TaskError::retry("boom")),
            &policy(),
            0.0,
        );
        assert_eq!(
            end.next,
            TaskState::new(TaskStatus::Failed, RetryState::Exhausted)
        );
        assert_eq!(end.retry_in, None);
        let end = decide(
            &facts(1, 1),
            HandlerResult::TimedOut(Duration::from_millis(5)),
            &policy(),
            0.0,
        );
        assert_eq!(end.outcome, AttemptOutcome::TimedOut);
        assert_eq!(end.error.as_deref(), Some("timed out after 5 ms"));
        assert_eq!(end.next.status, TaskStatus::Failed);
    }
}
