//! Every row of the error-mapping table, provoked with the real engine: a missing web
//! task, an unbound one, a scheduler task deleted behind TaskPilot's back, a refusal,
//! an engine that fails, an engine that is stopped and one that never answers.

use std::time::Duration;

use diesel::prelude::*;
use serde_json::json;

use crate::harness::{assert_error, TestSystem, TestTaskPilot};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_web_task_is_404_and_an_unbound_one_409() {
    let system = TestSystem::spawn_with(|c| c.worker_enabled = false).await;
    for (status, body) in [
        system.execution(999).await,
        system.cancel(999).await,
        system.bind(999, "demo").await,
    ] {
        assert_eq!(status, 404);
        assert_error(&body, "WEB_TASK_NOT_FOUND");
    }
    let (status, body) = system.send(system.http.get(system.url("/api/tasks/999"))).await;
    assert_eq!(status, 404);
    assert_error(&body, "WEB_TASK_NOT_FOUND");

    let id = system.create_web_task("demo", json!(null)).await;
    for (status, body) in [system.execution(id).await, system.cancel(id).await] {
        assert_eq!(status, 409);
        assert_error(&body, "NOT_BOUND");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_scheduler_type_is_passed_through_as_422() {
    let system = TestSystem::spawn_with(|c| c.worker_enabled = false).await;
    let id = system.create_web_task("demo", json!(null)).await;
    let (status, body) = system.bind(id, "no-such-type").await;
    assert_eq!(status, 422);
    assert_error(&body, "UNKNOWN_TASK_TYPE");
    assert!(body["message"].as_str().unwrap().contains("demo-slow"));
    assert_eq!(system.scheduler_task_count(), 0);
    // Still unbound: a bind with a known type works afterwards.
    system.bound(id, "demo").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduler_task_deleted_behind_our_back_is_404_saying_so() {
    let system = TestSystem::spawn_with(|c| c.worker_enabled = false).await;
    let id = system.create_web_task("demo", json!(null)).await;
    system.bound(id, "demo").await;
    diesel::sql_query("DELETE FROM tasks")
        .execute(&mut system.dtp.database().connect())
        .unwrap();

    for (status, body) in [system.execution(id).await, system.cancel(id).await] {
        assert_eq!(status, 404);
        assert_error(&body, "SCHEDULER_TASK_MISSING");
        assert!(
            body["message"].as_str().unwrap().contains("inconsistency"),
            "{body}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduler_refusal_is_409_with_its_message() {
    let system = TestSystem::spawn_with(|c| c.worker_enabled = false).await;
    let id = system.create_web_task("demo", json!(null)).await;
    system.bound(id, "demo-fail").await;
    // Make it FAILED: a demo-fail task with attempts used up.
    diesel::sql_query("UPDATE tasks SET max_attempts = 1")
        .execute(&mut system.dtp.database().connect())
        .unwrap();
    system.dtp.worker().run_due_tasks().await.unwrap();

    let (status, body) = system.cancel(id).await;
    assert_eq!(status, 409);
    assert_eq!(body["message"], "Cannot cancel task in state FAILED");
    assert_error(&body, "TASK_NOT_CANCELABLE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_scheduler_is_502() {
    let system = TestSystem::spawn_with(|c| c.worker_enabled = false).await;
    let id = system.create_web_task("demo", json!(null)).await;
    system.bound(id, "demo").await;
    // A row the engine cannot read makes it answer 500.
    diesel::sql_query("ALTER TABLE tasks DROP CONSTRAINT tasks_status_known")
        .execute(&mut system.dtp.database().connect())
        .unwrap();
    diesel::sql_query("ALTER TABLE tasks DROP CONSTRAINT tasks_retry_state_matches_status")
        .execute(&mut system.dtp.database().connect())
        .unwrap();
    diesel::sql_query("UPDATE tasks SET status = 'BOGUS'")
        .execute(&mut system.dtp.database().connect())
        .unwrap();

    for (status, body) in [system.execution(id).await, system.cancel(id).await] {
        assert_eq!(status, 502, "{body}");
        assert_error(&body, "SCHEDULER_ERROR");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_scheduler_is_503_and_own_records_stay_readable() {
    let mut system = TestSystem::spawn_with(|c| c.worker_enabled = false).await;
    let bound = system.create_web_task("demo", json!(null)).await;
    system.bound(bound, "demo").await;
    let unbound = system.create_web_task("demo", json!(null)).await;
    system.dtp.stop().await;

    for (status, body) in [
        system.execution(bound).await,
        system.cancel(bound).await,
        system.bind(unbound, "demo").await,
    ] {
        assert_eq!(status, 503, "{body}");
        assert_error(&body, "SCHEDULER_UNAVAILABLE");
    }
    let (status, _) = system
        .send(system.http.get(system.url(&format!("/api/tasks/{bound}"))))
        .await;
    assert_eq!(status, 200);
    let (status, _) = system.send(system.http.get(system.url("/api/tasks"))).await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduler_that_never_answers_is_503_after_the_timeout() {
    // A socket that accepts connections and never replies.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_url = format!("http://{}", silent.local_addr().unwrap());
    let accept = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let taskpilot =
        TestTaskPilot::spawn(&silent_url, |c| c.scheduler_timeout = Duration::from_millis(300)).await;
    let http = reqwest::Client::new();
    let (status, created) = crate::harness::send(
        http.post(taskpilot.url("/api/tasks"))
            .json(&json!({"type": "demo", "payload": 1})),
    )
    .await;
    assert_eq!(status, 201);
    let id = created["id"].as_i64().unwrap();

    let started = std::time::Instant::now();
    let (status, body) = crate::harness::send(
        http.post(taskpilot.url(&format!("/api/tasks/{id}/scheduler")))
            .json(&json!({"schedulerType": "demo"})),
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert_error(&body, "SCHEDULER_UNAVAILABLE");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "answered after the timeout, not hung"
    );
    accept.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_of_either_database_is_answered_and_heals() {
    let system = TestSystem::spawn().await;
    let id = system.create_web_task("demo", json!(null)).await;
    system.bound(id, "demo").await;

    // TaskPilot's own database: 503 on every endpoint that needs it.
    system.taskpilot.database.refuse_connections();
    for (status, body) in [
        system.execution(id).await,
        system.cancel(id).await,
        system.bind(id, "demo").await,
        system.send(system.http.get(system.url("/api/tasks"))).await,
        system
            .send(
                system
                    .http
                    .post(system.url("/api/tasks"))
                    .json(&json!({"type": "demo"})),
            )
            .await,
    ] {
        assert_eq!(status, 503, "{body}");
        assert_error(&body, "DATABASE_UNAVAILABLE");
    }
    system.taskpilot.database.accept_connections();

    // The engine's database: the engine answers 503, which TaskPilot reports as a failing scheduler.
    system.dtp.database().refuse_connections();
    let (status, body) = system.execution(id).await;
    assert_eq!(status, 502, "{body}");
    assert_error(&body, "SCHEDULER_ERROR");
    system.dtp.database().accept_connections();

    // Heals: the engine's pool replaces the connections the outage broke (a request may
    // still meet one of them), and the task runs.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let view = loop {
        let (status, view) = system.execution(id).await;
        if status == 200 && view["status"] == "SUCCEEDED" {
            break view;
        }
        assert!(status == 200 || status == 502, "{status} {view}");
        assert!(
            tokio::time::Instant::now() < deadline,
            "never healed: {status} {view}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(view["attemptCount"], 1);
}
