//! The rescuer: a task whose worker vanished mid-attempt (simulated in SQL: RUNNING with
//! an expired lease) is retried, or FAILED when that was its last attempt.

use std::time::Instant;

use dtp_contract::{RetryState, TaskStatus};
use dtp_engine::testing::TestEngine;
use serde_json::json;

use crate::api::EngineApi;
use crate::{sql, stepped, PATIENCE, POLL_EVERY};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_of_a_lost_worker_is_scheduled_for_retry() {
    let dtp = TestEngine::spawn_with(stepped).await;
    let api = EngineApi::new(&dtp);
    let lost = api.create_task(&json!({"type": "demo", "maxAttempts": 3})).await;
    let alive = api.create_task(&json!({"type": "demo", "maxAttempts": 3})).await;
    sql::claim_as_lost_worker(dtp.database(), lost.id, "ghost", -1_000);
    sql::claim_as_lost_worker(dtp.database(), alive.id, "busy", 60_000);

    assert_eq!(dtp.rescuer().rescue_expired_leases().await.unwrap(), 1);

    let rescued = api.task(lost.id).await;
    assert_eq!(rescued.status, TaskStatus::Pending);
    assert_eq!(rescued.retry_state, RetryState::RetryScheduled);
    assert_eq!(rescued.attempt_count, 1);
    let error = rescued.last_error.clone().unwrap();
    assert!(error.contains("worker ghost was lost"), "{error}");
    let attempts = api.attempts(lost.id).await;
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].outcome.as_deref(), Some("LOST"));
    assert_eq!(attempts[0].error.as_ref(), Some(&error));
    assert!(
        rescued.scheduled_for >= attempts[0].finished_at.unwrap(),
        "retried after a backoff"
    );
    assert_eq!(
        api.task(alive.id).await.status,
        TaskStatus::Running,
        "a live lease is left alone"
    );
    assert_eq!(dtp.rescuer().rescue_expired_leases().await.unwrap(), 0);

    // The retry runs as attempt 2 once due.
    let deadline = Instant::now() + PATIENCE;
    while dtp.worker().run_due_tasks().await.unwrap() == 0 {
        assert!(Instant::now() < deadline, "the rescued task never ran again");
        tokio::time::sleep(POLL_EVERY).await;
    }
    let done = api.task(lost.id).await;
    assert_eq!((done.status, done.attempt_count), (TaskStatus::Succeeded, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_last_attempt_fails_the_task() {
    let dtp = TestEngine::spawn_with(stepped).await;
    let api = EngineApi::new(&dtp);
    let task = api.create_task(&json!({"type": "demo", "maxAttempts": 1})).await;
    sql::claim_as_lost_worker(dtp.database(), task.id, "ghost", -1_000);

    assert_eq!(dtp.rescuer().rescue_expired_leases().await.unwrap(), 1);

    let failed = api.task(task.id).await;
    assert_eq!(failed.status, TaskStatus::Failed);
    assert_eq!(failed.retry_state, RetryState::Exhausted);
    assert_eq!(failed.attempt_count, 1);
    assert!(failed.completed_at.is_some());
    assert!(failed.last_error.unwrap().contains("ghost"));
    let attempts = api.attempts(task.id).await;
    assert_eq!(attempts[0].outcome.as_deref(), Some("LOST"));
    assert_eq!(
        dtp.worker().run_due_tasks().await.unwrap(),
        0,
        "a failed task never runs again"
    );
}
