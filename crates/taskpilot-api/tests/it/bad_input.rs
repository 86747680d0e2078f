//! Bad input gets a JSON error with the right status and leaves the database untouched.

use serde_json::json;

use crate::harness::{assert_error, TestSystem, TestTaskPilot};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_ids_and_routes_are_refused_with_json() {
    let system = TestSystem::spawn_with(|c| c.worker_enabled = false).await;
    let post = |body: &'static str| {
        system
            .http
            .post(system.url("/api/tasks"))
            .header("content-type", "application/json")
            .body(body)
    };
    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (post("{\"type\": "), 400, "MALFORMED_JSON"),
        (post("not json"), 400, "MALFORMED_JSON"),
        (post("{\"payload\": 1}"), 400, "INVALID_BODY"),
        (post("{\"type\": 5}"), 400, "INVALID_BODY"),
        (post("{\"type\": \"demo\", \"extra\": 1}"), 400, "INVALID_BODY"),
        (post("{\"type\": \"\"}"), 422, "VALIDATION_FAILED"),
        (
            post(r#"{"type": "demo", "payload": {"k": "a\u0000"}}"#),
            422,
            "VALIDATION_FAILED",
        ),
        // jsonb would keep all 309 digits, which no longer read back as a double.
        (
            post(r#"{"type": "demo", "payload": 1.7976931348623157e+308}"#),
            422,
            "VALIDATION_FAILED",
        ),
        (system.http.get(system.url("/api/tasks/abc")), 400, "INVALID_ID"),
        (system.http.get(system.url("/api/tasks/-4")), 400, "INVALID_ID"),
        (system.http.get(system.url("/api/tasks/+1")), 400, "INVALID_ID"),
        (system.http.get(system.url("/api/tasks/01")), 400, "INVALID_ID"),
        (system.http.get(system.url("/api/tasks/%31")), 400, "INVALID_PATH"),
        (
            system
                .http
                .post(system.url("/api/tasks"))
                .header("content-type", "text/plain")
                .body(r#"{"type": "demo"}"#),
            415,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        (
            system
                .http
                .post(system.url("/api/tasks"))
                .header("content-type", "application/json")
                .header("content-encoding", "br")
                .body(r#"{"type": "demo"}"#),
            415,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        (
            system.http.get(system.url("/api/tasks/0/execution")),
            400,
            "INVALID_ID",
        ),
        (
            system.http.get(system.url("/api/tasks?cursor=zzz")),
            400,
            "INVALID_CURSOR",
        ),
        (
            system.http.get(system.url("/api/tasks?limit=abc")),
            400,
            "INVALID_QUERY",
        ),
        (
            system.http.get(system.url("/api/tasks?limit=1000")),
            400,
            "INVALID_LIMIT",
        ),
        (
            system.http.get(system.url("/api/nothing")),
            404,
            "ROUTE_NOT_FOUND",
        ),
        (
            system.http.delete(system.url("/api/tasks/1")),
            405,
            "METHOD_NOT_ALLOWED",
        ),
    ];
    for (request, status, code) in cases {
        let (got, body) = system.send(request).await;
        assert_eq!(got, status, "{body}");
        assert_error(&body, code);
    }

    let id = system.create_web_task("demo", json!(null)).await;
    let bind = |body: serde_json::Value| {
        system
            .http
            .post(system.url(&format!("/api/tasks/{id}/scheduler")))
            .json(&body)
    };
    for (request, status, code) in [
        (bind(json!({})), 400, "INVALID_BODY"),
        (bind(json!({"schedulerType": 3})), 400, "INVALID_BODY"),
        (bind(json!({"schedulerType": ""})), 422, "VALIDATION_FAILED"),
    ] {
        let (got, body) = system.send(request).await;
        assert_eq!(got, status, "{body}");
        assert_error(&body, code);
    }
    let head = system
        .http
        .head(system.url(&format!("/api/tasks/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert!(head.bytes().await.unwrap().is_empty());
    assert_eq!(
        system.taskpilot.web_task_count(),
        1,
        "only the one valid task was stored"
    );
    assert_eq!(system.scheduler_task_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_limit_are_413() {
    let taskpilot = TestTaskPilot::spawn("http://127.0.0.1:9", |c| c.max_body_bytes = 4_096).await;
    let http = reqwest::Client::new();
    let big = "x".repeat(10_000);
    let (status, body) = crate::harness::send(
        http.post(taskpilot.url("/api/tasks"))
            .json(&json!({"type": "demo", "payload": big})),
    )
    .await;
    assert_eq!(status, 413);
    assert_error(&body, "PAYLOAD_TOO_LARGE");
    assert_eq!(taskpilot.web_task_count(), 0);

    // The default limit is 1 MiB (this TaskPilot also makes its database itself).
    let default = TestTaskPilot::spawn_on_missing_database("http://127.0.0.1:9", |_| {}).await;
    let just_over = "x".repeat(1024 * 1024);
    let (status, _) = crate::harness::send(
        http.post(default.url("/api/tasks"))
            .json(&json!({"type": "demo", "payload": just_over})),
    )
    .await;
    assert_eq!(status, 413);
    let under = "x".repeat(1000 * 1000);
    let (status, _) = crate::harness::send(
        http.post(default.url("/api/tasks"))
            .json(&json!({"type": "demo", "payload": under})),
    )
    .await;
    assert_eq!(status, 201);
}

/// A web task whose payload DTP would refuse once wrapped could never be bound: such a
/// create is refused up front, and one just within the limits binds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payloads_the_scheduler_would_refuse_are_refused_at_create() {
    let system = TestSystem::spawn_with(|c| c.worker_enabled = false).await;
    let create = |payload: serde_json::Value| {
        system
            .http
            .post(system.url("/api/tasks"))
            .json(&json!({"type": "demo", "payload": payload}))
    };
    let nested = |levels: usize| (0..levels).fold(json!(1), |inner, _| json!([inner]));

    let (status, body) = system.send(create(nested(126))).await;
    assert_eq!(status, 422, "{body}");
    assert_error(&body, "VALIDATION_FAILED");
    let just_under_a_mebibyte = "x".repeat(1024 * 1024 - 1_500);
    let (status, body) = system.send(create(json!(just_under_a_mebibyte))).await;
    assert_eq!(status, 413, "{body}");
    assert_error(&body, "PAYLOAD_TOO_LARGE");
    assert_eq!(system.taskpilot.web_task_count(), 0);

    let largest = "x".repeat(1024 * 1024 - 2 * 1024 - 2);
    for payload in [nested(99), json!(largest)] {
        let (status, body) = system.send(create(payload)).await;
        assert_eq!(status, 201, "{body}");
        system.bound(body["id"].as_i64().unwrap(), "demo").await;
    }
    assert_eq!(system.scheduler_task_count(), 2);
}

/// Doubles in a payload keep every bit: in TaskPilot's record and in the DTP task a bind makes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payload_numbers_come_back_exactly_as_sent() {
    use service_http::testing::doubles;

    let system = TestSystem::spawn_with(|c| c.worker_enabled = false).await;
    let sent = doubles::spread();
    let (status, created) = system
        .send(
            system
                .http
                .post(system.url("/api/tasks"))
                .header("content-type", "application/json")
                .body(format!(
                    r#"{{"type": "demo", "payload": {}}}"#,
                    doubles::json_array(&sent)
                )),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    doubles::assert_same_bits(&created["payload"], &sent);
    let id = created["id"].as_i64().unwrap();
    let (_, read) = system
        .send(system.http.get(system.url(&format!("/api/tasks/{id}"))))
        .await;
    doubles::assert_same_bits(&read["payload"], &sent);
    let bound = system.bound(id, "demo").await;
    let scheduler_task: serde_json::Value = system
        .http
        .get(format!(
            "{}/tasks/{}",
            system.dtp.base_url(),
            bound.scheduler_task_id.expect("bound")
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    doubles::assert_same_bits(&scheduler_task["payload"]["payload"], &sent);
}
