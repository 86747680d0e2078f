//! Failed and timed-out attempts: retries with growing, jittered backoff until the task
//! succeeds or runs out of attempts.

use std::time::Duration;

use dtp_contract::{AttemptResponse, RetryState, TaskStatus};
use dtp_engine::domain::RetryPolicy;
use dtp_engine::testing::TestEngine;
use serde_json::json;

use crate::api::EngineApi;
use crate::gates::{Gate, Gated};
use crate::{sql, stepped, PATIENCE};

const BACKOFF: RetryPolicy = RetryPolicy {
    base: Duration::from_millis(100),
    max: Duration::from_secs(10),
};
/// The worker looks for due retries this often, so a retry starts at most this late (plus load).
const RETRY_POLL_INTERVAL: Duration = Duration::from_millis(5);
/// How late a due retry may start on a busy machine.
const CLAIM_SLACK: Duration = Duration::from_secs(1);
/// Wire timestamps are truncated to milliseconds, so a gap read from them may be 1 ms short.
const WIRE_PRECISION: Duration = Duration::from_millis(1);

/// Time from the end of attempt `n - 1` to the start of attempt `n` (1-based).
fn gap_before(attempts: &[AttemptResponse], n: usize) -> Duration {
    let previous_end = attempts[n - 2].finished_at.unwrap();
    (attempts[n - 1].started_at - previous_end).to_std().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_task_retries_with_growing_backoff_until_exhausted() {
    let dtp = TestEngine::spawn_with(|config| {
        config.worker.retry = BACKOFF;
        config.worker.poll_interval = RETRY_POLL_INTERVAL;
    })
    .await;
    let api = EngineApi::new(&dtp);
    let task = api
        .create_task(&json!({"type": "demo-fail", "maxAttempts": 3}))
        .await;

    let failed = api.wait_for_status(task.id, TaskStatus::Failed, PATIENCE).await;

    assert_eq!(failed.retry_state, RetryState::Exhausted);
    assert_eq!(failed.attempt_count, 3);
    assert_eq!(
        failed.last_error.as_deref(),
        Some("demo-fail: attempt 3 fails by design")
    );
    assert!(failed.completed_at.is_some());
    let attempts = api.attempts(task.id).await;
    let numbers: Vec<i32> = attempts.iter().map(|a| a.attempt).collect();
    assert_eq!(numbers, [1, 2, 3]);
    assert!(attempts.iter().all(|a| a.outcome.as_deref() == Some("FAILED")));
    // The delay before attempt n + 1 lies in [d/2, d] with d = base * 2^(n-1); a retry
    // never starts before it is due, and starts soon after.
    let (gap1, gap2) = (gap_before(&attempts, 2), gap_before(&attempts, 3));
    let (d1, d2) = (BACKOFF.base, BACKOFF.base * 2);
    assert!(
        gap1 + WIRE_PRECISION >= d1 / 2 && gap1 <= d1 + CLAIM_SLACK,
        "gap1 {gap1:?}"
    );
    assert!(
        gap2 + WIRE_PRECISION >= d2 / 2 && gap2 <= d2 + CLAIM_SLACK,
        "gap2 {gap2:?}"
    );
    assert!(gap2 > gap1, "backoff must grow: {gap1:?} then {gap2:?}");
    // The last retry's delay, exactly: the exhausting write leaves `scheduled_for` as it was.
    let row = sql::task_row(dtp.database(), task.id);
    let second_end = sql::attempt_rows(dtp.database(), task.id)[1].finished_at.unwrap();
    let delay2 = (row.scheduled_for - second_end).to_std().unwrap();
    assert!(
        d2 / 2 <= delay2 && delay2 <= d2,
        "delay before attempt 3: {delay2:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_that_fails_once_succeeds_on_its_second_attempt() {
    let dtp = TestEngine::spawn().await;
    let api = EngineApi::new(&dtp);
    let task = api
        .create_task(&json!({"type": "demo-fail", "payload": {"failTimes": 1}, "maxAttempts": 3}))
        .await;

    let done = api
        .wait_for(task.id, "finished", PATIENCE, |t| t.status.is_terminal())
        .await;

    assert_eq!(done.status, TaskStatus::Succeeded);
    assert_eq!(done.retry_state, RetryState::Completed);
    assert_eq!(done.attempt_count, 2);
    assert!(done.completed_at.is_some());
    let outcomes: Vec<Option<String>> = api
        .attempts(task.id)
        .await
        .into_iter()
        .map(|a| a.outcome)
        .collect();
    assert_eq!(outcomes, [Some("FAILED".into()), Some("SUCCEEDED".into())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempt_over_its_timeout_is_stopped_and_fails() {
    let gate = Gate::default();
    let dtp = TestEngine::spawn_with_types(stepped, |engine| engine.register(Gated(gate.clone()))).await;
    let api = EngineApi::new(&dtp);
    let task = api
        .create_task(&json!({"type": "gated", "timeoutMs": 200, "maxAttempts": 1}))
        .await;

    // The gate never opens: only the timeout ends the attempt.
    assert_eq!(dtp.worker().run_due_tasks().await.unwrap(), 1);

    assert_eq!(gate.running(), 0, "the handler was stopped");
    let failed = api.task(task.id).await;
    assert_eq!(failed.status, TaskStatus::Failed);
    assert_eq!(failed.retry_state, RetryState::Exhausted);
    let error = failed.last_error.unwrap();
    assert!(error.contains("timed out"), "{error}");
    let attempts = api.attempts(task.id).await;
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].outcome.as_deref(), Some("TIMED_OUT"));
    assert_eq!(attempts[0].error.as_deref(), Some("timed out after 200 ms"));
}
