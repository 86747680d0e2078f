//! A database outage: requests get a JSON 503 at once (no hang, no panic), the worker
//! loop backs off, and both resume by themselves when the database is back, losing nothing.

use reqwest::StatusCode;
use serde_json::json;

use crate::api::{expect_error, EngineApi};
use crate::PATIENCE;
use dtp_contract::TaskStatus;
use dtp_engine::testing::TestEngine;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_is_503_and_the_engine_heals_by_itself() {
    let engine = TestEngine::spawn().await;
    let api = EngineApi::new(&engine);
    let before = api.create_task(&json!({"type": "demo"})).await;
    api.wait_for_status(before.id, TaskStatus::Succeeded, PATIENCE)
        .await;

    engine.database().refuse_connections();
    let started = std::time::Instant::now();
    expect_error(
        api.post_task(&json!({"type": "demo"})).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "DATABASE_UNAVAILABLE",
    )
    .await;
    let response = api
        .client()
        .get(api.url(&format!("/tasks/{}", before.id)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["retry-after"], "1");
    expect_error(response, StatusCode::SERVICE_UNAVAILABLE, "DATABASE_UNAVAILABLE").await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "answered promptly"
    );

    engine.database().accept_connections();
    // The pool and the claim loop recover without a restart; a new task runs.
    let deadline = std::time::Instant::now() + PATIENCE;
    let after = loop {
        let response = api.post_task(&json!({"type": "demo"})).await;
        if response.status() == StatusCode::CREATED {
            break response.json::<dtp_contract::TaskResponse>().await.unwrap();
        }
        assert!(std::time::Instant::now() < deadline, "the engine did not recover");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    api.wait_for_status(after.id, TaskStatus::Succeeded, PATIENCE)
        .await;
    assert_eq!(api.task(before.id).await.status, TaskStatus::Succeeded);
}
