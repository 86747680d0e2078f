//! Requests the engine must refuse: each gets its status and a JSON `{code, message}`,
//! and none of them leaves a row behind.

use dtp_contract::TaskStatus;
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
    let too_deep = format!(
        r#"{{"type": "demo", "payload": {}1{}}}"#,
        "[".repeat(101),
        "]".repeat(101)
    );
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
        (&too_deep, "payload"),
    ] {
        let response = api.post_raw(body.to_owned()).await;
        let error = expect_error(response, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_FAILED").await;
        assert!(error.message.starts_with(field), "{error:?}");
    }
    // A demo setting the type cannot use is refused, not replaced by its default.
    for (task_type, payload) in [
        ("demo-slow", json!({"sleepMs": -5})),
        ("demo-slow", json!({"sleepMs": 1.5})),
        ("demo-slow", json!({"sleepMs": "100"})),
        ("demo-slow", json!({"webTaskId": 1, "payload": {"sleepMs": null}})),
        ("demo-fail", json!({"failTimes": -1})),
        ("demo-fail", json!({"failTimes": 101})),
    ] {
        let response = api
            .post_task(&json!({"type": task_type, "payload": payload}))
            .await;
        let error = expect_error(response, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_FAILED").await;
        assert!(
            error
                .message
                .starts_with(&format!("payload is not what {task_type} takes: ")),
            "{error:?}"
        );
    }
    assert_eq!(sql::count_tasks(dtp.database()), 0);
    for (task_type, payload) in [
        ("demo-slow", json!({"sleepMs": 0})),
        ("demo-slow", json!({"payload": {"sleepMs": 10}})),
        ("demo-fail", json!({"failTimes": 0})),
        ("demo", json!({"sleepMs": "anything"})),
    ] {
        api.create_task(&json!({"type": task_type, "payload": payload}))
            .await;
    }
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

    let task = api.create_task(&json!({"type": "demo"})).await;
    assert_eq!(task.id, 1);
    // Only the canonical spelling names a task: `+1`, `01` and `%31` do not read task 1.
    for id in ["abc", "-1", "0", "1.5", "99999999999999999999", "+1", "01"] {
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
    let encoded = api.client().get(api.url("/tasks/%31")).send().await.unwrap();
    expect_error(encoded, StatusCode::BAD_REQUEST, "INVALID_PATH").await;
    assert_eq!(sql::count_tasks(dtp.database()), 1);
    assert_eq!(
        api.task(1).await.status,
        TaskStatus::Pending,
        "no cancel reached it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_must_be_plain_or_gzipped_json() {
    let dtp = spawn_engine().await;
    let api = EngineApi::new(&dtp);
    let client = api.client();
    let body = r#"{"type": "demo"}"#;

    // A page elsewhere can post these cross-site without a preflight: none is parsed.
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ] {
        let response = client
            .post(api.url("/tasks"))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        expect_error(
            response,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
        )
        .await;
    }
    let untyped = client.post(api.url("/tasks")).body(body).send().await.unwrap();
    expect_error(
        untyped,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "UNSUPPORTED_MEDIA_TYPE",
    )
    .await;
    for encoding in ["br", "zstd", "deflate"] {
        let response = client
            .post(api.url("/tasks"))
            .header("content-type", "application/json")
            .header("content-encoding", encoding)
            .body(body)
            .send()
            .await
            .unwrap();
        expect_error(
            response,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
        )
        .await;
    }
    assert_eq!(sql::count_tasks(dtp.database()), 0);

    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gzip, body.as_bytes()).unwrap();
    let gzipped = client
        .post(api.url("/tasks"))
        .header("content-type", "application/json; charset=utf-8")
        .header("content-encoding", "gzip")
        .body(gzip.finish().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(gzipped.status(), StatusCode::CREATED);
    assert_eq!(sql::count_tasks(dtp.database()), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_answers_like_get_without_a_body() {
    let dtp = spawn_engine().await;
    let api = EngineApi::new(&dtp);
    api.create_task(&json!({"type": "demo"})).await;

    for path in ["/tasks/1", "/tasks", "/healthz", "/task-types"] {
        let head = api.client().head(api.url(path)).send().await.unwrap();
        assert_eq!(head.status(), StatusCode::OK, "HEAD {path}");
        assert!(head.bytes().await.unwrap().is_empty(), "HEAD {path} has no body");
    }
    let missing = api.client().head(api.url("/tasks/99")).send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_repeat_at_most_a_hundred_characters_of_input() {
    let dtp = spawn_engine().await;
    let api = EngineApi::new(&dtp);
    let long_type = "t".repeat(MAX_BODY_BYTES / 2);

    let unknown = api.post_task(&json!({"type": long_type})).await;
    let error = expect_error(unknown, StatusCode::UNPROCESSABLE_ENTITY, "UNKNOWN_TASK_TYPE").await;
    assert!(error.message.len() < 400, "{}", error.message);
    let listing = api
        .client()
        .get(api.url(&format!("/tasks?status={long_type}")))
        .send()
        .await
        .unwrap();
    let error = expect_error(listing, StatusCode::BAD_REQUEST, "INVALID_STATUS").await;
    assert!(error.message.len() < 400, "{}", error.message);
    let malformed = api.post_raw(format!("{{\"type\": \"{long_type}")).await;
    let error = expect_error(malformed, StatusCode::BAD_REQUEST, "MALFORMED_JSON").await;
    assert!(error.message.len() < 400, "{}", error.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_up_methods_do_not_become_metric_labels() {
    let dtp = spawn_engine().await;
    let api = EngineApi::new(&dtp);
    for i in 0..50 {
        let method = reqwest::Method::from_bytes(format!("MADEUP{i}").as_bytes()).unwrap();
        let response = api
            .client()
            .request(method, api.url("/healthz"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    }
    let metrics = api.client().get(api.url("/metrics")).send().await.unwrap();
    let text = metrics.text().await.unwrap();
    assert!(!text.contains("MADEUP"), "made-up methods leaked into labels");
    assert!(text.contains(r#"method="other""#), "{text}");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browsers_of_listed_origins_only_may_call_across_sites() {
    let closed = spawn_engine().await;
    let open = TestEngine::spawn_with(|config| {
        stepped(config);
        config.cors_origins = vec!["https://app.example.com".into()];
    })
    .await;
    let client = reqwest::Client::new();
    let preflight = |engine: &TestEngine, origin: &str| {
        client
            .request(reqwest::Method::OPTIONS, format!("{}/tasks", engine.base_url()))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization, content-type")
            .send()
    };
    let allowed = |response: &reqwest::Response| {
        response
            .headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap().to_owned())
    };

    // Without listed origins no answer grants anything to a page elsewhere.
    let answer = preflight(&closed, "https://app.example.com").await.unwrap();
    assert_eq!(allowed(&answer), None);
    expect_error(answer, StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED").await;
    let read = client
        .get(format!("{}/healthz", closed.base_url()))
        .header("origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(allowed(&read), None);

    let answer = preflight(&open, "https://app.example.com").await.unwrap();
    assert!(answer.status().is_success(), "{}", answer.status());
    assert_eq!(allowed(&answer).as_deref(), Some("https://app.example.com"));
    let methods = answer.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(methods.contains("POST"), "{methods}");
    let created = client
        .post(format!("{}/tasks", open.base_url()))
        .header("origin", "https://app.example.com")
        .json(&json!({"type": "demo"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    assert_eq!(allowed(&created).as_deref(), Some("https://app.example.com"));

    let other = preflight(&open, "https://evil.example.com").await.unwrap();
    assert_eq!(allowed(&other), None);
    let error = expect_error(other, StatusCode::FORBIDDEN, "ORIGIN_NOT_ALLOWED").await;
    assert!(error.message.contains("origin"), "{error:?}");
}
