//! `POST /tasks/batch`: tasks come back in request order, a batch is accepted or refused as
//! a whole (a bad item or a reused idempotency key leaves no row behind), a replay answers
//! 200 with the same tasks, racing batches agree, and the worker runs what a batch inserted.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use dtp_contract::{TaskBatchResponse, TaskPage, TaskStatus};
use dtp_engine::domain::MAX_BATCH_TASKS;
use dtp_engine::testing::TestEngine;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::sync::Barrier;

use crate::api::{expect_error, EngineApi};
use crate::{sql, stepped, wait_until, PATIENCE};

/// Tasks the worker test submits in one full batch.
const FULL_BATCH: usize = MAX_BATCH_TASKS;
/// Keys two racing batches share.
const RACING_KEYS: usize = 500;

/// `{"tasks": [...]}` of `demo` tasks whose payloads are `{"n": n}`.
fn demo_batch(numbers: impl IntoIterator<Item = usize>) -> Value {
    let tasks: Vec<Value> = numbers
        .into_iter()
        .map(|n| json!({"type": "demo", "payload": {"n": n}}))
        .collect();
    json!({ "tasks": tasks })
}

/// Posts a batch that must be answered with `status`, and returns its tasks.
async fn submit(api: &EngineApi, body: &Value, status: StatusCode) -> TaskBatchResponse {
    let response = api.post_batch(body).await;
    assert_eq!(response.status(), status, "submitting {body}");
    response.json().await.unwrap()
}

/// `GET /tasks`: the first page of the listing.
async fn listed(api: &EngineApi) -> TaskPage {
    let response = api.client().get(api.url("/tasks")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_are_created_and_answered_in_request_order() {
    let dtp = TestEngine::spawn_with(stepped).await;
    let api = EngineApi::new(&dtp);
    let later: DateTime<Utc> = "2099-01-02T03:04:05.678Z".parse().unwrap();
    // The answer is built from the submission rather than read back, so a payload that
    // jsonb stores in another form (key order, number forms, escapes) must still match.
    let body = json!({"tasks": [
        {"type": "demo", "payload": {"n": 0, "zeta": [1.5, 1e3, 0.1, 12345678901234567890u64],
                                     "alpha": {"b": "é\u{1F600}\"\n", "a": null}, "": true}},
        {"type": "demo-fail", "payload": {"n": 1}, "maxAttempts": 5, "timeoutMs": 1234},
        {"type": "demo", "payload": {"n": 2}, "runAt": later},
    ]});

    let batch = submit(&api, &body, StatusCode::CREATED).await;

    let numbers: Vec<&Value> = batch.tasks.iter().map(|t| &t.payload["n"]).collect();
    assert_eq!(numbers, [0, 1, 2]);
    assert!(batch.tasks.windows(2).all(|w| w[0].id < w[1].id), "{batch:?}");
    assert!(batch.tasks.iter().all(|t| t.status == TaskStatus::Pending));
    assert_eq!(
        (
            batch.tasks[1].task_type.as_str(),
            batch.tasks[1].max_attempts,
            batch.tasks[1].timeout_ms
        ),
        ("demo-fail", 5, 1234)
    );
    assert_eq!(batch.tasks[2].scheduled_for, later);
    for task in &batch.tasks {
        assert_eq!(&api.task(task.id).await, task, "the answer is the stored task");
    }
    assert_eq!(sql::count_tasks(dtp.database()), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_bad_item_refuses_the_whole_batch() {
    let dtp = TestEngine::spawn_with(stepped).await;
    let api = EngineApi::new(&dtp);

    let mut out_of_range = demo_batch(0..5);
    out_of_range["tasks"][3]["maxAttempts"] = json!(0);
    let error = expect_error(
        api.post_batch(&out_of_range).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_FAILED",
    )
    .await;
    assert_eq!(
        error.message,
        "tasks[3]: maxAttempts must be between 1 and 100, got 0"
    );

    let mut unknown = demo_batch(0..5);
    unknown["tasks"][1]["type"] = json!("mine-bitcoin");
    let error = expect_error(
        api.post_batch(&unknown).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "UNKNOWN_TASK_TYPE",
    )
    .await;
    assert!(
        error.message.starts_with("tasks[1]: unknown task type"),
        "{error:?}"
    );

    assert!(listed(&api).await.items.is_empty());
    assert_eq!(sql::count_tasks(dtp.database()), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_oversized_and_malformed_batches_are_refused() {
    let dtp = TestEngine::spawn_with(stepped).await;
    let api = EngineApi::new(&dtp);

    let empty = api.post_batch(&json!({"tasks": []})).await;
    let error = expect_error(empty, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_FAILED").await;
    assert_eq!(error.message, "tasks must hold 1 to 1000 items, got 0");
    let oversized = api.post_batch(&demo_batch(0..=MAX_BATCH_TASKS)).await;
    let error = expect_error(oversized, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_FAILED").await;
    assert_eq!(error.message, "tasks must hold 1 to 1000 items, got 1001");
    for malformed in [
        json!({}),
        json!({"type": "demo"}),
        json!({"tasks": [{"type": "demo", "bogus": 1}]}),
    ] {
        expect_error(
            api.post_batch(&malformed).await,
            StatusCode::BAD_REQUEST,
            "INVALID_BODY",
        )
        .await;
    }
    assert_eq!(sql::count_tasks(dtp.database()), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_batch_answers_200_with_the_same_tasks() {
    let dtp = TestEngine::spawn_with(stepped).await;
    let api = EngineApi::new(&dtp);
    let keyed =
        |n: usize| json!({"type": "demo", "payload": {"n": n}, "idempotencyKey": format!("order-{n}")});
    let body = json!({"tasks": [keyed(0), keyed(1), keyed(2)]});

    let first = submit(&api, &body, StatusCode::CREATED).await;
    let replay = submit(&api, &body, StatusCode::OK).await;
    assert_eq!(replay, first);

    // Known keys and a new one: 201, the known items answered by their existing tasks.
    let mixed = json!({"tasks": [keyed(2), keyed(3), keyed(0)]});
    let answer = submit(&api, &mixed, StatusCode::CREATED).await;
    assert_eq!(answer.tasks[0], first.tasks[2]);
    assert_eq!(answer.tasks[2], first.tasks[0]);
    assert!(answer.tasks[1].id > first.tasks[2].id);
    assert_eq!(sql::count_tasks(dtp.database()), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_that_names_another_task_refuses_the_batch() {
    let dtp = TestEngine::spawn_with(stepped).await;
    let api = EngineApi::new(&dtp);
    let stored = api
        .create_task(&json!({"type": "demo", "payload": {"n": 7}, "idempotencyKey": "order-7"}))
        .await;

    let body = json!({"tasks": [
        {"type": "demo", "payload": {"n": 1}, "idempotencyKey": "order-1"},
        {"type": "demo", "payload": {"n": 2}},
        {"type": "demo", "payload": {"n": 8}, "idempotencyKey": "order-7"},
    ]});
    let error = expect_error(
        api.post_batch(&body).await,
        StatusCode::CONFLICT,
        "IDEMPOTENCY_KEY_REUSED",
    )
    .await;
    assert!(error.message.starts_with("tasks[2]: "), "{error:?}");
    assert!(
        error.message.contains(&format!("task {}", stored.id)),
        "{error:?}"
    );
    assert_eq!(sql::count_tasks(dtp.database()), 1, "nothing of the batch stays");

    // The key that was rolled back is free: the batch without the bad item goes through.
    let fixed = json!({"tasks": [body["tasks"][0].clone(), body["tasks"][1].clone()]});
    let batch = submit(&api, &fixed, StatusCode::CREATED).await;
    assert_eq!(batch.tasks.len(), 2);
    assert_eq!(sql::count_tasks(dtp.database()), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_sharing_a_key_are_answered_by_one_task() {
    let dtp = TestEngine::spawn_with(stepped).await;
    let api = EngineApi::new(&dtp);
    let same = json!({"type": "demo", "payload": {"n": 1}, "idempotencyKey": "shared"});

    let batch = submit(
        &api,
        &json!({"tasks": [same, {"type": "demo"}, same]}),
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(batch.tasks[0], batch.tasks[2]);
    assert_ne!(batch.tasks[0].id, batch.tasks[1].id);
    assert_eq!(sql::count_tasks(dtp.database()), 2);

    let different = json!({"type": "demo", "payload": {"n": 2}, "idempotencyKey": "new"});
    let conflicting =
        json!({"tasks": [{"type": "demo", "payload": {"n": 1}, "idempotencyKey": "new"}, different]});
    let error = expect_error(
        api.post_batch(&conflicting).await,
        StatusCode::CONFLICT,
        "IDEMPOTENCY_KEY_REUSED",
    )
    .await;
    assert!(
        error
            .message
            .starts_with("tasks[1] reuses the idempotency key of tasks[0]"),
        "{error:?}"
    );
    assert_eq!(sql::count_tasks(dtp.database()), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_runs_every_task_of_a_full_batch_once() {
    let dtp = TestEngine::spawn().await;
    let api = EngineApi::new(&dtp);

    let batch = submit(&api, &demo_batch(0..FULL_BATCH), StatusCode::CREATED).await;
    assert_eq!(batch.tasks.len(), FULL_BATCH);

    let db = dtp.database();
    let expected = i64::try_from(FULL_BATCH).unwrap();
    wait_until("the batch has run", PATIENCE, || {
        sql::count_tasks_in(db, TaskStatus::Succeeded.as_str()) == expected
    })
    .await;
    let attempts = sql::all_attempt_rows(db);
    assert_eq!(attempts.len(), FULL_BATCH, "one attempt per task");
    assert!(attempts.iter().all(|a| a.outcome.as_deref() == Some("SUCCEEDED")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_batches_with_the_same_keys_in_opposite_orders_agree() {
    let dtp = TestEngine::spawn_with(stepped).await;
    let api = Arc::new(EngineApi::new(&dtp));
    let keyed: Vec<Value> = (0..RACING_KEYS)
        .map(|n| json!({"type": "demo", "payload": {"n": n}, "idempotencyKey": format!("race-{n}")}))
        .collect();
    let forwards = json!({ "tasks": keyed });
    let backwards = json!({ "tasks": keyed.iter().rev().collect::<Vec<_>>() });
    let start = Arc::new(Barrier::new(2));

    let racers: Vec<_> = [forwards, backwards]
        .into_iter()
        .map(|body| {
            let (api, start) = (Arc::clone(&api), Arc::clone(&start));
            tokio::spawn(async move {
                start.wait().await;
                let response = api.post_batch(&body).await;
                assert!(response.status().is_success(), "{response:?}");
                response.json::<TaskBatchResponse>().await.unwrap()
            })
        })
        .collect();
    let mut answers = Vec::new();
    for racer in racers {
        answers.push(racer.await.unwrap());
    }

    let mut backwards_ids: Vec<i64> = answers[1].tasks.iter().map(|t| t.id).collect();
    backwards_ids.reverse();
    let forwards_ids: Vec<i64> = answers[0].tasks.iter().map(|t| t.id).collect();
    assert_eq!(forwards_ids, backwards_ids);
    assert_eq!(
        sql::count_tasks(dtp.database()),
        i64::try_from(RACING_KEYS).unwrap()
    );
}
