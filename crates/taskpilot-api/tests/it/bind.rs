//! Binding is idempotent and exactly once: repeats, concurrent binds, another type,
//! and a crash between the scheduler's answer and TaskPilot's commit.

use std::time::Duration;

use futures::future::join_all;
use serde_json::json;

use crate::harness::{assert_error, send, taskpilot_process, test_config, TestSystem};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeat_returns_the_same_binding_and_another_type_conflicts() {
    let system = TestSystem::spawn_with(|c| c.worker_enabled = false).await;
    let id = system.create_web_task("demo", json!("hello")).await;

    let first = system.bound(id, "demo-slow").await;
    assert_eq!(first.status, "SUBMITTED");
    assert_eq!(first.scheduler_type.as_deref(), Some("demo-slow"));
    let (status, again) = system.bind(id, "demo-slow").await;
    assert_eq!(status, 200);
    assert_eq!(again["schedulerTaskId"], json!(first.scheduler_task_id));

    let (status, body) = system.bind(id, "demo").await;
    assert_eq!(status, 409);
    assert_error(&body, "ALREADY_BOUND");
    assert_eq!(system.scheduler_task_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_binds_create_exactly_one_scheduler_task() {
    let system = TestSystem::spawn_with(|c| c.worker_enabled = false).await;
    let id = system.create_web_task("demo", json!("hello")).await;

    let binds = (0..16).map(|_| system.bind(id, "demo"));
    let results = join_all(binds).await;
    let created = results.iter().filter(|(s, _)| *s == 201).count();
    let repeated = results.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!((created, repeated), (1, 15), "{results:?}");
    let ids: std::collections::HashSet<_> = results
        .iter()
        .map(|(_, b)| b["schedulerTaskId"].clone())
        .collect();
    assert_eq!(ids.len(), 1);
    assert_eq!(system.scheduler_task_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_and_binds_of_many_web_tasks_each_get_their_own_answer() {
    // Creates and binds arriving together share statements; each answer must still be the
    // caller's own web task, bound to its own scheduler task.
    let system = TestSystem::spawn_with(|c| c.worker_enabled = false).await;
    let creates = (0..24).map(|n| system.create_web_task("demo", json!({ "n": n })));
    let ids = join_all(creates).await;
    for (n, id) in ids.iter().enumerate() {
        let (_, record) = system
            .send(system.http.get(system.url(&format!("/api/tasks/{id}"))))
            .await;
        assert_eq!(record["payload"], json!({ "n": n }), "web task {id}");
    }

    // Each web task bound twice at once: one bind creates, its twin finds that binding.
    let binds = ids.iter().chain(&ids).map(|id| system.bind(*id, "demo"));
    let results = join_all(binds).await;
    let (first, twin) = results.split_at(ids.len());
    let mut scheduler_ids = std::collections::HashSet::new();
    for ((id, a), b) in ids.iter().zip(first).zip(twin) {
        let mut statuses = [a.0, b.0];
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 201], "web task {id}: {a:?} {b:?}");
        assert_eq!(a.1["id"], json!(id));
        assert_eq!(a.1["schedulerTaskId"], b.1["schedulerTaskId"]);
        let execution = system.execution_view(*id).await;
        assert_eq!(json!(execution.scheduler_task_id), a.1["schedulerTaskId"]);
        scheduler_ids.insert(a.1["schedulerTaskId"].as_i64().unwrap());
    }
    assert_eq!(scheduler_ids.len(), ids.len());
    assert_eq!(system.scheduler_task_count(), ids.len() as i64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_binds_of_different_types_bind_one_and_refuse_the_rest() {
    let system = TestSystem::spawn_with(|c| c.worker_enabled = false).await;
    let id = system.create_web_task("demo", json!(null)).await;
    let types = ["demo", "demo-slow", "demo-fail", "demo", "demo-slow", "demo-fail"];
    let results = join_all(types.iter().map(|t| system.bind(id, t))).await;
    assert_eq!(system.scheduler_task_count(), 1);
    let (_, record) = system
        .send(system.http.get(system.url(&format!("/api/tasks/{id}"))))
        .await;
    let winner = record["schedulerType"].as_str().unwrap().to_owned();
    for ((status, body), requested) in results.iter().zip(types) {
        if requested == winner {
            assert!(*status == 200 || *status == 201, "{status} {body}");
        } else {
            assert_eq!(*status, 409, "{requested}: {body}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_the_schedulers_answer_and_the_commit_binds_the_same_task_on_retry() {
    let system = TestSystem::spawn_with(|c| c.worker_enabled = false).await;
    // A TaskPilot process of our own, on the system's TaskPilot database, with the fault point on.
    let config = test_config(&system.taskpilot.database, system.dtp.base_url());
    let port = free_port();
    let spawn = |fault: bool| {
        let fault = fault.to_string();
        taskpilot_process(
            &config,
            port,
            &[("TASKPILOT_FAULT_EXIT_AFTER_SCHEDULER_CREATE", &fault)],
        )
    };
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let id = system.create_web_task("demo", json!("hello")).await;

    let mut doomed = spawn(true);
    wait_until_up(&http, &base).await;
    let bind = http
        .post(format!("{base}/api/tasks/{id}/scheduler"))
        .json(&json!({"schedulerType": "demo"}))
        .send()
        .await;
    assert!(bind.is_err(), "the process dies before answering");
    let exit = doomed.wait().unwrap();
    assert_eq!(exit.code(), Some(86), "exited at the fault point");
    assert_eq!(system.scheduler_task_count(), 1, "the scheduler task exists");
    let (_, record) = system
        .send(system.http.get(system.url(&format!("/api/tasks/{id}"))))
        .await;
    assert_eq!(
        record["schedulerTaskId"],
        serde_json::Value::Null,
        "but the link was never committed"
    );

    let mut restarted = spawn(false);
    wait_until_up(&http, &base).await;
    let (status, bound) = send(
        http.post(format!("{base}/api/tasks/{id}/scheduler"))
            .json(&json!({"schedulerType": "demo"})),
    )
    .await;
    restarted.kill().unwrap();
    let _ = restarted.wait();
    assert_eq!(status, 201, "{bound}");
    assert_eq!(
        system.scheduler_task_count(),
        1,
        "the retry found the same scheduler task"
    );
    let scheduler_ids: Vec<i64> = {
        use diesel::prelude::*;
        #[derive(QueryableByName)]
        struct Id {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            id: i64,
        }
        diesel::sql_query("SELECT id FROM tasks")
            .load::<Id>(&mut system.dtp.database().connect())
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect()
    };
    assert_eq!(bound["schedulerTaskId"], scheduler_ids[0]);
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub async fn wait_until_up(http: &reqwest::Client, base: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while http.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "taskpilot-api did not come up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
