//! The README flow: create → bind → execution → cancel, against a real engine.

use std::time::Duration;

use dtp_contract::{RetryState, TaskStatus};
use serde_json::json;

use std::sync::Arc;

use crate::harness::{assert_error, count_rows, TestSystem};
use crate::own_types::{Held, HeldState, Receipt};
use crate::PATIENCE;

fn is_millisecond_utc(value: &serde_json::Value) -> bool {
    value.as_str().is_some_and(|s| {
        chrono::DateTime::parse_from_rfc3339(s).is_ok()
            && s.ends_with('Z')
            && s.split('.').nth(1).is_some_and(|f| f.len() == 4)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_bind_run_and_read_the_execution_view() {
    let system = TestSystem::spawn().await;

    let (status, created) = system
        .send(
            system
                .http
                .post(system.url("/api/tasks"))
                .json(&json!({"type": "demo", "payload": "hello"})),
        )
        .await;
    assert_eq!(status, 201);
    let id = created["id"].as_i64().unwrap();
    assert_eq!(created["type"], "demo");
    assert_eq!(created["payload"], "hello");
    assert_eq!(created["status"], "PENDING");
    assert_eq!(created["schedulerTaskId"], serde_json::Value::Null);
    assert!(is_millisecond_utc(&created["createdAt"]) && is_millisecond_utc(&created["updatedAt"]));

    let (status, fetched) = system
        .send(system.http.get(system.url(&format!("/api/tasks/{id}"))))
        .await;
    assert_eq!(status, 200);
    assert_eq!(fetched, created);

    let bound = system.bound(id, "demo").await;
    let scheduler_task_id = bound.scheduler_task_id.expect("bound");
    assert_eq!((bound.id, bound.status.as_str()), (id, "SUBMITTED"));
    assert_eq!(
        (bound.task_type.as_str(), &bound.payload),
        ("demo", &json!("hello"))
    );
    assert!(
        bound.execution.is_some(),
        "a bind reports the execution it created"
    );

    // The engine received the web task wrapped as its payload.
    let dtp_task: serde_json::Value = system
        .http
        .get(format!("{}/tasks/{scheduler_task_id}", system.dtp.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        dtp_task["payload"],
        json!({"webTaskId": id, "type": "demo", "payload": "hello"})
    );
    assert_eq!(dtp_task["type"], "demo");

    system
        .wait_for_status(id, TaskStatus::Succeeded, Duration::from_secs(10))
        .await;
    // The view's JSON itself is under test here: names, nulls, millisecond timestamps.
    let (_, view) = system.execution(id).await;
    assert_eq!(view["schedulerTaskId"], scheduler_task_id);
    assert_eq!(view["attemptCount"], 1);
    assert_eq!(view["retryState"], "COMPLETED");
    for field in ["createdAt", "scheduledFor", "processingStartedAt", "completedAt"] {
        assert!(is_millisecond_utc(&view[field]), "{field}: {view}");
    }
    let millis = |field: &str| {
        chrono::DateTime::parse_from_rfc3339(view[field].as_str().unwrap())
            .unwrap()
            .timestamp_millis()
    };
    assert_eq!(
        view["queueLatencyMs"],
        millis("processingStartedAt") - millis("scheduledFor")
    );
    assert_eq!(
        view["processingLatencyMs"],
        millis("completedAt") - millis("processingStartedAt")
    );
    assert_eq!(
        view["endToEndLatencyMs"],
        millis("completedAt") - millis("createdAt")
    );

    // Finished: cancel is refused with the scheduler's reason.
    let (status, body) = system.cancel(id).await;
    assert_eq!(status, 409);
    assert_eq!(body["message"], "Cannot cancel task in state SUCCEEDED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_execution_has_no_latencies_yet_and_cancels() {
    let system = TestSystem::spawn_with(|c| c.worker_enabled = false).await;
    let id = system.create_web_task("report", json!({"n": 1})).await;
    system.bound(id, "demo").await;

    let (status, view) = system.execution(id).await;
    assert_eq!(status, 200);
    assert_eq!(view["status"], "PENDING");
    assert_eq!(view["processingStartedAt"], serde_json::Value::Null);
    for latency in ["queueLatencyMs", "processingLatencyMs", "endToEndLatencyMs"] {
        assert_eq!(view[latency], serde_json::Value::Null, "{latency}");
    }

    assert_eq!(system.cancel(id).await.0, 204);
    assert_eq!(system.cancel(id).await.0, 204, "cancel is idempotent");
    let view = system.execution_view(id).await;
    assert_eq!(
        (view.status, view.retry_state),
        (TaskStatus::Canceled, RetryState::Canceled)
    );
    assert_eq!(view.attempt_count, 0);
    assert_eq!(view.last_error, None);
    // The latencies' JSON: one known, one that cannot be.
    let (_, view) = system.execution(id).await;
    assert!(view["endToEndLatencyMs"].as_i64().is_some());
    assert_eq!(view["queueLatencyMs"], serde_json::Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canceling_a_running_task_ends_canceled_and_stays_canceled() {
    let held = Arc::new(HeldState::default());
    let system =
        TestSystem::spawn_with_types(|_| {}, |engine| engine.register(Held(Arc::clone(&held)))).await;
    let id = system.create_web_task("slow", json!(null)).await;
    system.bound(id, "held").await;
    held.wait_until("the attempt started", |h| h.started() == 1).await;

    let (status, body) = system.cancel(id).await;
    assert_eq!(status, 204, "{body}");
    let (_, canceled) = system.execution(id).await;
    assert_eq!(canceled["status"], "CANCELED");

    // The handler was told to stop; whatever it did after, the task stays canceled.
    held.wait_until("the attempt was stopped", |h| h.stopped() == 1)
        .await;
    let (_, later) = system.execution(id).await;
    assert_eq!(later["status"], "CANCELED", "{later}");
    assert_eq!(later["completedAt"], canceled["completedAt"]);
    assert_eq!(later["retryState"], "CANCELED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binding_to_a_type_of_the_engine_s_own_shows_its_result() {
    let system = TestSystem::spawn_with_types(|_| {}, |engine| engine.register(Receipt)).await;
    let id = system.create_web_task("order", json!({"n": 1})).await;
    system.bound(id, "receipt").await;
    let view = system.wait_for_status(id, TaskStatus::Succeeded, PATIENCE).await;
    assert_eq!(view.result, Some(json!({"receiptFor": id, "webType": "order"})));

    let other = system.create_web_task("order", json!(null)).await;
    let (status, body) = system.bind(other, "nope").await;
    assert_eq!(status, 422);
    assert_eq!(body["code"], "UNKNOWN_TASK_TYPE");
    assert_eq!(
        body["message"],
        "unknown task type \"nope\"; known types: demo, demo-fail, demo-slow, receipt"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_is_newest_first_with_a_cursor() {
    let system = TestSystem::spawn_with(|c| c.worker_enabled = false).await;
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(system.create_web_task("item", json!(n)).await);
    }
    let (status, page) = system
        .send(system.http.get(system.url("/api/tasks?limit=2")))
        .await;
    assert_eq!(status, 200);
    let first: Vec<i64> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_i64().unwrap())
        .collect();
    assert_eq!(first, vec![ids[4], ids[3]]);
    let cursor = page["nextCursor"].as_str().unwrap().to_owned();

    // A task inserted meanwhile does not shift the next page.
    system.create_web_task("late", json!(null)).await;
    let (_, page) = system
        .send(
            system
                .http
                .get(system.url(&format!("/api/tasks?limit=2&cursor={cursor}"))),
        )
        .await;
    let second: Vec<i64> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_i64().unwrap())
        .collect();
    assert_eq!(second, vec![ids[2], ids[1]]);
    let cursor = page["nextCursor"].as_str().unwrap().to_owned();
    let (_, page) = system
        .send(
            system
                .http
                .get(system.url(&format!("/api/tasks?limit=2&cursor={cursor}"))),
        )
        .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["nextCursor"], serde_json::Value::Null);

    let (status, body) = system
        .send(system.http.get(system.url("/api/tasks?limit=0")))
        .await;
    assert_eq!(status, 400);
    assert_error(&body, "INVALID_LIMIT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_are_echoed_or_generated() {
    let system = TestSystem::spawn_with(|c| c.worker_enabled = false).await;
    let response = system
        .http
        .get(system.url("/api/tasks/12345"))
        .header("x-request-id", "trace-abc-1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(response.headers()["x-request-id"], "trace-abc-1");
    let response = system.http.get(system.url("/api/tasks")).send().await.unwrap();
    let generated = response.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(generated.len(), 32);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_reports_the_scheduler_without_failing_on_it_and_metrics_count_calls() {
    let mut system = TestSystem::spawn_with(|c| c.worker_enabled = false).await;
    // The mirror's first reconcile reads each unfinished bound task once: let it pass before
    // binding, so that the calls counted below are this test's own.
    let deadline = std::time::Instant::now() + PATIENCE;
    while count_rows(&mut system.taskpilot.database.connect(), "feed_positions") == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the follower never reconciled"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let id = system.create_web_task("demo", json!(null)).await;
    system.bound(id, "demo").await;
    assert_eq!(system.execution(id).await.0, 200);
    let unbound = system.create_web_task("demo", json!(null)).await;
    assert_eq!(system.bind(unbound, "no-such-type").await.0, 422);

    let (status, ready) = system.send(system.http.get(system.url("/readyz"))).await;
    assert_eq!(status, 200);
    assert_eq!(ready["scheduler"], "ok");
    assert_eq!(ready["migrations"], "applied");

    system.dtp.stop().await;
    assert_eq!(system.execution(id).await.0, 503);
    let (status, ready) = system.send(system.http.get(system.url("/readyz"))).await;
    assert_eq!(status, 200, "readiness does not depend on the scheduler");
    assert_eq!(ready["scheduler"], "unreachable");

    let metrics = system
        .http
        .get(system.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for series in [
        r#"taskpilot_scheduler_calls_total{operation="create",outcome="ok",status="2xx"} 1"#,
        r#"taskpilot_scheduler_calls_total{operation="get",outcome="ok",status="2xx"} 1"#,
        r#"taskpilot_scheduler_calls_total{operation="create",outcome="rejected",status="422"} 1"#,
        r#"taskpilot_scheduler_calls_total{operation="get",outcome="unreachable",status="none"} 1"#,
        r#"http_requests_total{route="/api/tasks/{id}/execution",method="GET",status="503"} 1"#,
    ] {
        assert!(metrics.contains(series), "missing {series} in\n{metrics}");
    }
    assert!(metrics.contains("taskpilot_scheduler_call_duration_seconds_count{operation=\"create\"} 2"));
}
