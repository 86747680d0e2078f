//! `/tasks` over HTTP: the shape of a created task, reading it, and canceling it in
//! every state (PENDING, CANCELED, SUCCEEDED, FAILED, unknown).

use std::collections::BTreeSet;

use dtp_contract::{RetryState, TaskResponse, TaskStatus};
use dtp_engine::testing::TestEngine;
use reqwest::StatusCode;
use serde_json::{json, Value};
use service_http::testing::doubles;

use crate::api::{assert_wire_timestamp, expect_error, EngineApi};
use crate::{sql, stepped};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_answers_201_with_the_pending_task_in_wire_format() {
    let dtp = TestEngine::spawn_with(stepped).await;
    let api = EngineApi::new(&dtp);

    let response = api.post_task(&json!({"type": "demo", "payload": {"n": 1}})).await;

    assert_eq!(response.status(), StatusCode::CREATED);
    let created: Value = response.json().await.unwrap();
    let fields: BTreeSet<&str> = created.as_object().unwrap().keys().map(String::as_str).collect();
    let expected: BTreeSet<&str> = [
        "id",
        "type",
        "payload",
        "status",
        "attemptCount",
        "maxAttempts",
        "timeoutMs",
        "retryState",
        "lastError",
        "createdAt",
        "scheduledFor",
        "processingStartedAt",
        "completedAt",
        "updatedAt",
        "result",
    ]
    .into();
    assert_eq!(fields, expected);
    assert!(created["result"].is_null());
    assert!(created["id"].as_i64().unwrap() > 0);
    assert_eq!(created["type"], "demo");
    assert_eq!(created["payload"], json!({"n": 1}));
    assert_eq!(created["status"], "PENDING");
    assert_eq!(created["retryState"], "NONE");
    assert_eq!(created["attemptCount"], 0);
    assert_eq!(created["maxAttempts"], 3);
    assert_eq!(created["timeoutMs"], 300_000);
    assert!(created["lastError"].is_null());
    assert!(created["processingStartedAt"].is_null());
    assert!(created["completedAt"].is_null());
    for field in ["createdAt", "scheduledFor", "updatedAt"] {
        assert_wire_timestamp(&created[field]);
    }

    let id = created["id"].as_i64().unwrap();
    let fetched: Value = api
        .client()
        .get(api.url(&format!("/tasks/{id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(fetched, created);
    assert_eq!(sql::count_tasks(dtp.database()), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_task_is_404_for_read_and_cancel() {
    let dtp = TestEngine::spawn_with(stepped).await;
    let api = EngineApi::new(&dtp);

    let read = api.client().get(api.url("/tasks/424242")).send().await.unwrap();
    let error = expect_error(read, StatusCode::NOT_FOUND, "TASK_NOT_FOUND").await;
    assert!(error.message.contains("424242"), "{error:?}");

    let cancel = api.cancel(424_242).await;
    expect_error(cancel, StatusCode::NOT_FOUND, "TASK_NOT_FOUND").await;

    let attempts = api
        .client()
        .get(api.url("/tasks/424242/attempts"))
        .send()
        .await
        .unwrap();
    expect_error(attempts, StatusCode::NOT_FOUND, "TASK_NOT_FOUND").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reads_each_get_their_own_task() {
    // Reads arriving together share one statement; each must still get its own answer,
    // repeats and unknown ids included.
    let dtp = TestEngine::spawn_with(stepped).await;
    let api = EngineApi::new(&dtp);
    let mut created = Vec::new();
    for n in 0..16 {
        created.push(
            api.create_task(&json!({"type": "demo", "payload": {"n": n}}))
                .await,
        );
    }
    let unknown = created.iter().map(|t| t.id).max().unwrap() + 1_000;
    let ids: Vec<i64> = created
        .iter()
        .chain(&created)
        .map(|t| t.id)
        .chain([unknown])
        .collect();
    let reads = ids
        .iter()
        .map(|id| api.client().get(api.url(&format!("/tasks/{id}"))).send());
    let answers = futures_util::future::join_all(reads).await;

    for (id, answer) in ids.iter().zip(answers) {
        let answer = answer.unwrap();
        if *id == unknown {
            expect_error(answer, StatusCode::NOT_FOUND, "TASK_NOT_FOUND").await;
            continue;
        }
        assert_eq!(answer.status(), StatusCode::OK);
        let task: TaskResponse = answer.json().await.unwrap();
        let expected = created.iter().find(|t| t.id == *id).unwrap();
        assert_eq!(&task, expected);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_of_a_pending_task_is_final_and_idempotent() {
    let dtp = TestEngine::spawn_with(stepped).await;
    let api = EngineApi::new(&dtp);
    let task = api.create_task(&json!({"type": "demo"})).await;

    let first = api.cancel(task.id).await;
    assert_eq!(first.status(), StatusCode::NO_CONTENT);
    let canceled = api.task(task.id).await;
    assert_eq!(canceled.status, TaskStatus::Canceled);
    assert_eq!(canceled.retry_state, RetryState::Canceled);
    assert!(canceled.completed_at.is_some());

    let again = api.cancel(task.id).await;
    assert_eq!(again.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        api.task(task.id).await,
        canceled,
        "a repeated cancel changes nothing"
    );

    assert_eq!(
        dtp.worker().run_due_tasks().await.unwrap(),
        0,
        "a canceled task never runs"
    );
    assert_eq!(api.task(task.id).await, canceled);
    assert!(api.attempts(task.id).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_of_a_finished_task_is_409() {
    let dtp = TestEngine::spawn_with(stepped).await;
    let api = EngineApi::new(&dtp);
    let succeeded = api.create_task(&json!({"type": "demo"})).await;
    let failed = api
        .create_task(&json!({"type": "demo-fail", "maxAttempts": 1}))
        .await;
    assert_eq!(dtp.worker().run_due_tasks().await.unwrap(), 2);

    for (task, status) in [(succeeded, TaskStatus::Succeeded), (failed, TaskStatus::Failed)] {
        let finished = api.task(task.id).await;
        assert_eq!(finished.status, status);

        let error = expect_error(
            api.cancel(task.id).await,
            StatusCode::CONFLICT,
            "TASK_NOT_CANCELABLE",
        )
        .await;

        assert_eq!(error.message, format!("Cannot cancel task in state {status}"));
        assert_eq!(
            api.task(task.id).await,
            finished,
            "a refused cancel changes nothing"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payload_numbers_come_back_exactly_as_sent() {
    let dtp = TestEngine::spawn_with(stepped).await;
    let api = EngineApi::new(&dtp);
    let doubles = doubles::spread();
    let body = format!(
        r#"{{"type": "demo", "payload": {}}}"#,
        doubles::json_array(&doubles)
    );
    let response = api.post_raw(body).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let created: TaskResponse = response.json().await.unwrap();
    for answer in [created.payload.clone(), api.task(created.id).await.payload] {
        doubles::assert_same_bits(&answer, &doubles);
    }
}
