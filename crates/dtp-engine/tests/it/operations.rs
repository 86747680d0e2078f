//! Probes and metrics: `/healthz` needs no database, `/readyz` follows it, and the
//! Prometheus metrics move as tasks flow.

use diesel::connection::SimpleConnection;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::api::EngineApi;
use crate::{stepped, PATIENCE};
use dtp_contract::TaskStatus;
use dtp_engine::domain::new_task::{IDEMPOTENCY_KEY_MAX_CHARS, MAX_ATTEMPTS_RANGE, TIMEOUT_MS_RANGE};
use dtp_engine::domain::task_batch::MAX_BATCH_TASKS;
use dtp_engine::testing::TestEngine;
use service_http::page_cursor::CURSOR_PATTERN;
use service_http::testing::api_spec;

async fn scrape(api: &EngineApi) -> String {
    let response = api.client().get(api.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    response.text().await.unwrap()
}

/// The value of the sample whose line starts with `series` (name and labels).
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        line.strip_prefix(series)
            .and_then(|rest| rest.trim().parse().ok())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_the_database_and_health_does_not() {
    let engine = TestEngine::spawn_on_missing_database(|_| {}).await;
    let api = EngineApi::new(&engine);
    let get = |path: &'static str| api.client().get(api.url(path)).send();

    let ready = get("/readyz").await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    assert_eq!(ready.json::<Value>().await.unwrap()["migrations"], "applied");

    engine.database().refuse_connections();
    let not_ready = get("/readyz").await.unwrap();
    assert_eq!(not_ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        not_ready.json::<Value>().await.unwrap()["database"],
        "unavailable"
    );
    assert_eq!(get("/healthz").await.unwrap().status(), StatusCode::OK);
    engine.database().accept_connections();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_when_tasks_flow() {
    let engine = TestEngine::spawn().await;
    let api = EngineApi::new(&engine);
    let before = scrape(&api).await;
    assert_eq!(sample(&before, r#"dtp_worker_slots{state="total"}"#), Some(10.0));
    assert_eq!(
        sample(
            &before,
            r#"dtp_tasks_finished_total{type="demo",status="SUCCEEDED"}"#
        ),
        None
    );

    let ok = api.create_task(&json!({"type": "demo"})).await;
    let retried = api
        .create_task(&json!({"type": "demo-fail", "payload": {"failTimes": 1}}))
        .await;
    let later = api
        .create_task(&json!({"type": "demo", "runAt": "2099-01-01T00:00:00Z"}))
        .await;
    let canceled = api
        .create_task(&json!({"type": "demo", "runAt": "2099-01-01T00:00:00Z"}))
        .await;
    api.wait_for_status(ok.id, TaskStatus::Succeeded, PATIENCE).await;
    api.wait_for_status(retried.id, TaskStatus::Succeeded, PATIENCE)
        .await;
    assert_eq!(api.cancel(canceled.id).await.status(), StatusCode::NO_CONTENT);

    let after = scrape(&api).await;
    assert_eq!(
        sample(
            &after,
            r#"dtp_tasks_finished_total{type="demo",status="SUCCEEDED"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &after,
            r#"dtp_tasks_finished_total{type="demo-fail",status="SUCCEEDED"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &after,
            r#"dtp_tasks_finished_total{type="demo",status="CANCELED"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&after, r#"dtp_retries_scheduled_total{type="demo-fail"}"#),
        Some(1.0)
    );
    assert_eq!(sample(&after, "dtp_cancels_total"), Some(1.0));
    assert_eq!(
        sample(&after, r#"dtp_tasks{type="demo",status="PENDING"}"#),
        Some(1.0),
        "only {} is live",
        later.id
    );
    assert_eq!(
        sample(
            &after,
            r#"dtp_attempt_duration_seconds_count{type="demo-fail",outcome="FAILED"}"#
        ),
        Some(1.0)
    );
    assert!(sample(&after, "dtp_claims_per_poll_count").unwrap() >= 2.0);
    assert_eq!(
        sample(&after, "dtp_pickup_latency_seconds_count"),
        Some(3.0),
        "three attempts started"
    );
    assert!(
        sample(
            &after,
            r#"http_requests_total{route="/tasks",method="POST",status="201"}"#
        ) == Some(4.0)
    );
    assert!(
        sample(
            &after,
            r#"http_request_duration_seconds_count{route="/tasks/{id}"}"#
        )
        .unwrap()
            >= 1.0
    );
}

/// Every route the engine serves, as (method, path template).
const SERVED_ROUTES: &[(&str, &str)] = &[
    ("post", "/tasks"),
    ("post", "/tasks/batch"),
    ("get", "/tasks"),
    ("get", "/tasks/{id}"),
    ("put", "/tasks/{id}/cancel"),
    ("get", "/tasks/{id}/attempts"),
    ("get", "/task-types"),
    ("get", "/events"),
    ("post", "/leases"),
    ("post", "/leases/{leaseToken}/heartbeat"),
    ("post", "/leases/{leaseToken}/complete"),
    ("post", "/leases/{leaseToken}/fail"),
    ("post", "/leases/{leaseToken}/release"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
    ("get", "/docs"),
];

/// The live-task gauges count pending tasks in both queues (the shared one and a limited
/// type's own), and the oldest due task's age is the older of the two queues' oldest,
/// leaving out tasks not due yet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_gauges_read_both_queues() {
    let engine = TestEngine::spawn_with(stepped).await;
    let api = EngineApi::new(&engine);
    let mut conn = engine.database().connect();
    conn.batch_execute(
        "INSERT INTO tasks (task_type, payload, max_attempts, timeout_ms, scheduled_for, type_queue) VALUES \
             ('demo', '{}', 3, 1000, now() - interval '5 seconds', false), \
             ('demo', '{}', 3, 1000, now() - interval '10 seconds', false), \
             ('limited', '{}', 3, 1000, now() - interval '60 seconds', true), \
             ('limited', '{}', 3, 1000, now(), true), \
             ('limited', '{}', 3, 1000, now() + interval '1 day', true); \
         INSERT INTO tasks (task_type, payload, max_attempts, timeout_ms, status, attempt_count, \
                            processing_started_at, lease_token, lease_expires_at, worker_id) \
         VALUES ('demo', '{}', 3, 1000, 'RUNNING', 1, now(), nextval('task_lease_tokens'), \
                 now() + interval '30 seconds', 'busy')",
    )
    .unwrap();

    let metrics = scrape(&api).await;
    assert_eq!(
        sample(&metrics, r#"dtp_tasks{type="demo",status="PENDING"}"#),
        Some(2.0)
    );
    assert_eq!(
        sample(&metrics, r#"dtp_tasks{type="limited",status="PENDING"}"#),
        Some(3.0)
    );
    assert_eq!(
        sample(&metrics, r#"dtp_tasks{type="demo",status="RUNNING"}"#),
        Some(1.0)
    );
    let oldest = sample(&metrics, "dtp_oldest_due_pending_age_seconds").unwrap();
    assert!(
        (60.0..120.0).contains(&oldest),
        "the limited type's task: {oldest}"
    );

    // With the limited type's queue empty, the shared queue's oldest answers.
    conn.batch_execute("DELETE FROM tasks WHERE task_type = 'limited'")
        .unwrap();
    let oldest = sample(&scrape(&api).await, "dtp_oldest_due_pending_age_seconds").unwrap();
    assert!(
        (10.0..60.0).contains(&oldest),
        "the shared queue's task: {oldest}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_served_spec_describes_exactly_the_served_routes() {
    let engine = TestEngine::spawn_with(crate::stepped).await;
    let api = EngineApi::new(&engine);
    let spec: Value = api
        .client()
        .get(api.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    api_spec::assert_describes_exactly(&spec, SERVED_ROUTES);
    // Readiness answers a report of its own rather than an error body.
    api_spec::assert_error_answers_are_error_bodies(&spec, &["/readyz"]);
    api_spec::assert_query_pattern(&spec, "get", "/tasks", "cursor", CURSOR_PATTERN);
    // The bounds the description states are the ones validation applies.
    let request = &spec["components"]["schemas"]["CreateTaskRequest"]["properties"];
    assert_eq!(request["type"]["enum"], json!(["demo", "demo-fail", "demo-slow"]));
    assert_eq!(request["maxAttempts"]["minimum"], *MAX_ATTEMPTS_RANGE.start());
    assert_eq!(request["maxAttempts"]["maximum"], *MAX_ATTEMPTS_RANGE.end());
    assert_eq!(request["timeoutMs"]["minimum"], *TIMEOUT_MS_RANGE.start());
    assert_eq!(request["timeoutMs"]["maximum"], *TIMEOUT_MS_RANGE.end());
    assert_eq!(request["idempotencyKey"]["maxLength"], IDEMPOTENCY_KEY_MAX_CHARS);
    let batch = &spec["components"]["schemas"]["CreateTaskBatchRequest"]["properties"]["tasks"];
    assert_eq!(batch["maxItems"], MAX_BATCH_TASKS);
    assert_eq!(batch["minItems"], 1);

    // Each described operation is routed (not a 404 for the route or a 405), and every
    // status it answers is one the spec lists for it.
    for (method, path) in api_spec::described_operations(&spec) {
        let url = api.url(&path.replace("{id}", "1").replace("{leaseToken}", "1"));
        let request = match method.as_str() {
            "get" => api.client().get(url),
            "post" => api.client().post(url).json(&json!({"type": "demo"})),
            "put" => api.client().put(url),
            other => panic!("unexpected method {other}"),
        };
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        api_spec::assert_status_documented(&spec, &method, &path, status);
        if status == 404 {
            let body: Value = response.json().await.unwrap();
            assert_ne!(body["code"], "ROUTE_NOT_FOUND", "{method} {path} is not routed");
        }
    }
}

/// `/docs` loads nothing from elsewhere: its script and stylesheet come from the engine,
/// open to a browser that cannot send a token with them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_docs_page_is_served_whole_by_the_engine() {
    let engine = TestEngine::spawn_with(|config| {
        crate::stepped(config);
        config.auth_enabled = false;
    })
    .await;
    let api = EngineApi::new(&engine);
    let page = api
        .client()
        .get(api.url("/docs"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!page.contains("https://") && !page.contains("http://"), "{page}");
    let assets: Vec<&str> = page
        .split('"')
        .filter(|part| part.starts_with("/docs/assets/"))
        .collect();
    assert_eq!(assets.len(), 2, "{page}");
    let plain = reqwest::Client::new();
    for (asset, content_type) in assets.iter().zip(["text/css", "text/javascript"]) {
        let response = plain.get(api.url(asset)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{asset}");
        let served_as = response.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(served_as.starts_with(content_type), "{asset}: {served_as}");
        assert!(response.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("immutable"));
        assert!(
            response.bytes().await.unwrap().len() > 100_000,
            "{asset} is the real asset"
        );
    }
}
