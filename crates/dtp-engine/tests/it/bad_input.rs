//! Requests the engine must refuse: each gets its status and a JSON `{code, message}`,
//! and none of them leaves a row behind.

use dtp_engine::testing::TestEngine;
use reqwest::StatusCode;
use serde_json::json;

use crate::api::{expect_error, EngineApi};
use crate::{sql, stepped};

/// The body limit of the engine under test, and a body well over it.
const MAX_BODY_BYTES: usize = 4_096;
const OVERSIZED_BODY_BYTES: usize = 10 * 1_024;

async fn spawn_engine() -> TestEngine {
    TestEngine::spawn_with(|config| {
        stepped(config);
        config.max_body_bytes = MAX_BODY_BYTES;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_bodies_are_400() {
    let dtp = spawn_engine().await;
    let api = EngineApi::new(&dtp);
    let cases = [
        (r#"{"type": "demo","#, "MALFORMED_JSON", "EOF"),
        ("not json", "MALFORMED_JSON", "expected"),
        (r#"{"payload": {}}"#, "INVALID_BODY", "`type`"),
        (
            r#"{"type": "demo", "maxAttempts": "x"}"#,
            "INVALID_BODY",
            "invalid type",
        ),
        (r#"{"type": 7}"#, "INVALID_BODY", "invalid type"),
        (r#"{"type": "demo", "bogus": 1}"#, "INVALID_BODY", "`bogus`"),
        (
            r#"{"type": "demo", "runAt": "tomorrow"}"#,
            "INVALID_BODY",
            "invalid request body",
        ),
    ];

    for (body, code, mentions) in cases {
        let error = expect_error(api.post_raw(body).await, StatusCode::BAD_REQUEST, code).await;
        assert!(error.message.contains(mentions), "{body}: {error:?}");
    }
    assert_eq!(sql::count_tasks(dtp.database()), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn well_formed_but_unacceptable_tasks_are_422() {
    let dtp = spawn_engine().await;
    let api = EngineApi::new(&dtp);

    let unknown = api.post_task(&json!({"type": "mine-bitcoin"})).await;
    let error = expect_error(unknown, StatusCode::UNPROCESSABLE_ENTITY, "UNKNOWN_TASK_TYPE").await;
    assert!(error.message.contains("\"mine-bitcoin\""), "{error:?}");
    assert!(error.message.contains("demo, demo-fail, demo-slow"), "{error:?}");
    for max_attempts in [0, 101] {
        let response = api
            .post_task(&json!({"type": "demo", "maxAttempts": max_attempts}))
            .await;
        let error = expect_error(response, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_FAILED").await;
        assert!(error.message.contains("maxAttempts"), "{error:?}");
        assert!(error.message.contains(&max_attempts.to_string()), "{error:?}");
    }
    let no_time = api.post_task(&json!({"type": "demo", "timeoutMs": 0})).await;
    expect_error(no_time, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_FAILED").await;
    let empty_key = api
        .post_task(&json!({"type": "demo", "idempotencyKey": ""}))
        .await;
    expect_error(empty_key, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_FAILED").await;
    // Postgres cannot store U+0000 in text or jsonb, and keeps numbers of 1e308 and more with
    // digits that no longer read back: refused up front, not a 500 on this or a later read.
    for (body, field) in [
        (r#"{"type": "demo", "payload": {"note": "a\u0000b"}}"#, "payload"),
        (
            r#"{"type": "demo", "payload": [1.7976931348623157e+308]}"#,
            "payload",
        ),
        (
            r#"{"type": "demo", "idempotencyKey": "k\u0000"}"#,
            "idempotencyKey",
        ),
    ] {
        let response = api.post_raw(body).await;
        let error = expect_error(response, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_FAILED").await;
        assert!(error.message.starts_with(field), "{error:?}");
    }
    assert_eq!(sql::count_tasks(dtp.database()), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_over_the_limit_is_413() {
    let dtp = spawn_engine().await;
    let api = EngineApi::new(&dtp);
    let padding = "x".repeat(OVERSIZED_BODY_BYTES);

    let response = api
        .post_task(&json!({"type": "demo", "payload": {"padding": padding}}))
        .await;

    let error = expect_error(response, StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE").await;
    assert!(error.message.contains(&MAX_BODY_BYTES.to_string()), "{error:?}");
    let fits = "x".repeat(MAX_BODY_BYTES / 2);
    api.create_task(&json!({"type": "demo", "payload": {"padding": fits}}))
        .await;
    assert_eq!(
        sql::count_tasks(dtp.database()),
        1,
        "only the body within the limit was stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_that_are_not_positive_integers_are_400() {
    let dtp = spawn_engine().await;
    let api = EngineApi::new(&dtp);

    for id in ["abc", "-1", "0", "1.5", "99999999999999999999"] {
        let read = api
            .client()
            .get(api.url(&format!("/tasks/{id}")))
            .send()
            .await
            .unwrap();
        expect_error(read, StatusCode::BAD_REQUEST, "INVALID_ID").await;
        let cancel = api
            .client()
            .put(api.url(&format!("/tasks/{id}/cancel")))
            .send()
            .await
            .unwrap();
        expect_error(cancel, StatusCode::BAD_REQUEST, "INVALID_ID").await;
    }
    assert_eq!(sql::count_tasks(dtp.database()), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_and_methods_answer_json() {
    let dtp = spawn_engine().await;
    let api = EngineApi::new(&dtp);
    let client = api.client();

    let nowhere = client.get(api.url("/nowhere")).send().await.unwrap();
    expect_error(nowhere, StatusCode::NOT_FOUND, "ROUTE_NOT_FOUND").await;
    let delete = client.delete(api.url("/tasks/1")).send().await.unwrap();
    expect_error(delete, StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED").await;
    let delete_all = client.delete(api.url("/tasks")).send().await.unwrap();
    expect_error(delete_all, StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED").await;
    assert_eq!(sql::count_tasks(dtp.database()), 0);
}
