//! `GET /api/tasks/{id}/execution?include=attempts`: the execution view with every attempt
//! and its queue and run times, read from the engine's attempt history.

use std::time::Duration;

use chrono::{DateTime, Utc};
use dtp_contract::TaskStatus;
use serde_json::{json, Value};

use std::sync::Arc;

use crate::harness::{assert_error, TestSystem};
use crate::own_types::{Held, HeldState};
use crate::PATIENCE;

async fn execution_with_attempts(system: &TestSystem, id: i64) -> (u16, Value) {
    system
        .send(
            system
                .http
                .get(system.url(&format!("/api/tasks/{id}/execution?include=attempts"))),
        )
        .await
}

fn timestamp(value: &Value) -> DateTime<Utc> {
    value.as_str().unwrap().parse().unwrap()
}

/// Asserts an attempt's latencies: non-negative integers that match its own timestamps.
fn assert_latencies(attempt: &Value) {
    let started = timestamp(&attempt["startedAt"]);
    let queue_ms = attempt["queueMs"].as_i64().unwrap();
    assert_eq!(
        queue_ms,
        (started - timestamp(&attempt["dueAt"])).num_milliseconds(),
        "{attempt}"
    );
    assert!(queue_ms >= 0, "{attempt}");
    if attempt["finishedAt"].is_null() {
        assert!(attempt["runMs"].is_null(), "{attempt}");
    } else {
        let run_ms = attempt["runMs"].as_i64().unwrap();
        assert_eq!(
            run_ms,
            (timestamp(&attempt["finishedAt"]) - started).num_milliseconds(),
            "{attempt}"
        );
        assert!(run_ms >= 0, "{attempt}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_task_shows_both_attempts_with_their_latencies() {
    let system = TestSystem::spawn_with(|c| c.worker_enabled = false).await;
    // The demo types read their settings through TaskPilot's envelope.
    let id = system.create_web_task("demo", json!({"failTimes": 1})).await;
    system.bound(id, "demo-fail").await;

    // Attempt 1 fails now; attempt 2 runs once its backoff is over.
    let mut ran = system.dtp.worker().run_due_tasks().await.unwrap();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while ran < 2 {
        assert!(tokio::time::Instant::now() < deadline, "the retry never ran");
        tokio::time::sleep(Duration::from_millis(5)).await;
        ran += system.dtp.worker().run_due_tasks().await.unwrap();
    }

    let (status, view) = execution_with_attempts(&system, id).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["status"], "SUCCEEDED");
    let attempts = view["attempts"].as_array().unwrap();
    let outcomes: Vec<&str> = attempts.iter().map(|a| a["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, ["FAILED", "SUCCEEDED"]);
    assert_eq!(attempts[0]["attempt"], 1);
    assert_eq!(attempts[1]["attempt"], 2);
    assert_eq!(attempts[0]["error"], "demo-fail: attempt 1 of 1 planned failures");
    assert_eq!(attempts[1]["error"], Value::Null);
    assert!(attempts.iter().all(|a| a["workerId"].as_str().is_some()));
    for attempt in attempts {
        assert_latencies(attempt);
    }
    // The first attempt was due when the task was created, the retry when it was scheduled.
    assert_eq!(attempts[0]["dueAt"], view["createdAt"]);
    assert_eq!(attempts[1]["dueAt"], view["scheduledFor"]);
    assert!(timestamp(&attempts[1]["dueAt"]) >= timestamp(&attempts[0]["finishedAt"]));

    // Without `include` the view has no `attempts` key at all.
    let (status, plain) = system.execution(id).await;
    assert_eq!(status, 200);
    assert!(plain.get("attempts").is_none(), "{plain}");
    let mut without = view.clone();
    without.as_object_mut().unwrap().remove("attempts");
    assert_eq!(plain, without);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_attempt_has_no_run_time_yet() {
    let held = Arc::new(HeldState::default());
    let system =
        TestSystem::spawn_with_types(|_| {}, |engine| engine.register(Held(Arc::clone(&held)))).await;
    let id = system.create_web_task("demo", json!(null)).await;
    system.bound(id, "held").await;
    held.wait_until("the attempt started", |h| h.started() == 1).await;
    let running = system.wait_for_status(id, TaskStatus::Running, PATIENCE).await;
    assert_eq!(running.attempt_count, 1);

    let (status, view) = execution_with_attempts(&system, id).await;
    assert_eq!(status, 200, "{view}");
    let attempts = view["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1, "{view}");
    assert_eq!(attempts[0]["outcome"], Value::Null);
    assert_eq!(attempts[0]["finishedAt"], Value::Null);
    assert_latencies(&attempts[0]);
    assert_eq!(system.cancel(id).await.0, 204);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_that_has_not_run_has_no_attempts_and_bad_queries_are_400() {
    let system = TestSystem::spawn_with(|c| c.worker_enabled = false).await;
    let id = system.create_web_task("demo", json!(null)).await;
    system.bound(id, "demo").await;
    let (status, view) = execution_with_attempts(&system, id).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["attempts"], json!([]));

    for (query, code) in [
        ("include=attempt", "INVALID_INCLUDE"),
        ("include=ATTEMPTS", "INVALID_INCLUDE"),
        ("include=attempts,logs", "INVALID_INCLUDE"),
        ("include=", "INVALID_INCLUDE"),
        ("include=attempts&verbose=1", "INVALID_QUERY"),
        ("expand=attempts", "INVALID_QUERY"),
    ] {
        let (status, body) = system
            .send(
                system
                    .http
                    .get(system.url(&format!("/api/tasks/{id}/execution?{query}"))),
            )
            .await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_error(&body, code);
    }
    // An unbound web task still says so first.
    let unbound = system.create_web_task("demo", json!(null)).await;
    let (status, body) = execution_with_attempts(&system, unbound).await;
    assert_eq!(status, 409);
    assert_error(&body, "NOT_BOUND");
}
