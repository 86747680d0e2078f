//! Idempotency keys: a repeated submission returns the task the key already names, a
//! different submission under the same key is refused, and racing submissions create one task.

use std::collections::BTreeSet;
use std::sync::Arc;

use dtp_contract::TaskResponse;
use dtp_engine::testing::TestEngine;
use reqwest::StatusCode;
use serde_json::json;
use tokio::sync::Barrier;

use crate::api::{expect_error, EngineApi};
use crate::{sql, stepped};

/// Submissions racing with one key.
const RACING_SUBMISSIONS: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_key_and_body_returns_the_existing_task() {
    let dtp = TestEngine::spawn_with(stepped).await;
    let api = EngineApi::new(&dtp);
    let body = json!({"type": "demo", "payload": {"order": 7}, "idempotencyKey": "order-7"});

    let first = api.post_task(&body).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: TaskResponse = first.json().await.unwrap();
    let second = api.post_task(&body).await;
    assert_eq!(second.status(), StatusCode::OK);
    let second: TaskResponse = second.json().await.unwrap();

    assert_eq!(second, first);
    assert_eq!(sql::count_tasks(dtp.database()), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_key_with_a_different_request_is_409() {
    let dtp = TestEngine::spawn_with(stepped).await;
    let api = EngineApi::new(&dtp);
    let task = api
        .create_task(&json!({"type": "demo", "payload": {"order": 7}, "idempotencyKey": "order-7"}))
        .await;

    for different in [
        json!({"type": "demo", "payload": {"order": 8}, "idempotencyKey": "order-7"}),
        json!({"type": "demo", "payload": {"order": 7}, "maxAttempts": 5, "idempotencyKey": "order-7"}),
        json!({"type": "demo-fail", "payload": {"order": 7}, "idempotencyKey": "order-7"}),
    ] {
        let response = api.post_task(&different).await;
        let error = expect_error(response, StatusCode::CONFLICT, "IDEMPOTENCY_KEY_REUSED").await;
        assert!(error.message.contains(&task.id.to_string()), "{error:?}");
    }
    assert_eq!(sql::count_tasks(dtp.database()), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_submissions_with_one_key_create_one_task() {
    let dtp = TestEngine::spawn_with(stepped).await;
    let api = Arc::new(EngineApi::new(&dtp));
    let start = Arc::new(Barrier::new(RACING_SUBMISSIONS));
    let body = json!({"type": "demo", "payload": {"race": true}, "idempotencyKey": "the-race"});

    let submissions: Vec<_> = (0..RACING_SUBMISSIONS)
        .map(|_| {
            let (api, start, body) = (Arc::clone(&api), Arc::clone(&start), body.clone());
            tokio::spawn(async move {
                start.wait().await;
                let response = api.post_task(&body).await;
                let status = response.status();
                let task: TaskResponse = response.json().await.unwrap();
                (status, task.id)
            })
        })
        .collect();
    let mut answers = Vec::new();
    for submission in submissions {
        answers.push(submission.await.unwrap());
    }

    let created = answers.iter().filter(|(s, _)| *s == StatusCode::CREATED).count();
    let returned = answers.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    assert_eq!((created, returned), (1, RACING_SUBMISSIONS - 1), "{answers:?}");
    let id = answers[0].1;
    assert!(answers.iter().all(|(_, other)| *other == id), "{answers:?}");
    assert_eq!(sql::count_tasks(dtp.database()), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submissions_arriving_together_each_get_their_own_task() {
    let dtp = TestEngine::spawn_with(stepped).await;
    let api = Arc::new(EngineApi::new(&dtp));
    let start = Arc::new(Barrier::new(RACING_SUBMISSIONS));
    // Keyed and unkeyed submissions, some keys repeated: grouped into shared inserts, each
    // is still answered with the task made from its own body.
    let submissions: Vec<_> = (0..RACING_SUBMISSIONS)
        .map(|n| {
            let (api, start) = (Arc::clone(&api), Arc::clone(&start));
            let body = match n % 3 {
                0 => json!({"type": "demo", "payload": {"n": n}}),
                1 => json!({"type": "demo", "payload": {"n": n}, "idempotencyKey": format!("own-{n}")}),
                _ => json!({"type": "demo", "payload": {"shared": true}, "idempotencyKey": "shared"}),
            };
            tokio::spawn(async move {
                start.wait().await;
                let response = api.post_task(&body).await;
                let status = response.status();
                let task: TaskResponse = response.json().await.unwrap();
                (n, status, task)
            })
        })
        .collect();
    let mut shared_ids = BTreeSet::new();
    for submission in submissions {
        let (n, status, task) = submission.await.unwrap();
        if n % 3 == 2 {
            shared_ids.insert(task.id);
            assert_eq!(task.payload, json!({"shared": true}));
        } else {
            assert_eq!(status, StatusCode::CREATED);
            assert_eq!(task.payload, json!({"n": n}), "submission {n} got another's task");
        }
    }
    assert_eq!(shared_ids.len(), 1, "one task for the shared key");
    let sharing = (0..RACING_SUBMISSIONS).filter(|n| n % 3 == 2).count();
    let distinct = RACING_SUBMISSIONS - sharing + 1;
    assert_eq!(sql::count_tasks(dtp.database()), distinct as i64);
}
