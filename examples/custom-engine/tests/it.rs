//! The custom engine runs its typed handler: a task submitted over HTTP is run and keeps the
//! handler's result, and one with a payload of the wrong shape is refused at submission.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use custom_engine::SendInvoice;
use dtp_contract::{TaskResponse, TaskStatus};
use dtp_engine::testing::TestEngine;
use serde_json::{json, Value};

async fn submit(http: &reqwest::Client, engine: &TestEngine, body: Value) -> TaskResponse {
    let response = http
        .post(format!("{}/tasks", engine.base_url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    response.json().await.unwrap()
}

async fn finished(http: &reqwest::Client, engine: &TestEngine, id: i64) -> TaskResponse {
    for _ in 0..1_500 {
        let task: TaskResponse = http
            .get(format!("{}/tasks/{id}", engine.base_url()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if task.status.is_terminal() {
            return task;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("task {id} did not finish");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_its_own_task_type() {
    let engine =
        TestEngine::spawn_with_types(|config| config.demo_types = false, |e| e.register(SendInvoice)).await;
    let http = reqwest::Client::new();
    let sent = submit(
        &http,
        &engine,
        json!({"type": "send-invoice", "payload": {"customer": "ada", "amountCents": 1200}}),
    )
    .await;
    let wrong = http
        .post(format!("{}/tasks", engine.base_url()))
        .json(&json!({"type": "send-invoice", "payload": {"customer": "bob"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 422);
    let error: Value = wrong.json().await.unwrap();
    assert_eq!(error["code"], "VALIDATION_FAILED");
    assert!(error["message"]
        .as_str()
        .unwrap()
        .contains("missing field `amountCents`"));

    let done = finished(&http, &engine, sent.id).await;
    assert_eq!(done.status, TaskStatus::Succeeded);
    assert_eq!(
        done.result,
        Some(json!({"invoiceNumber": format!("INV-{}", sent.id), "customer": "ada", "attempt": 1}))
    );
}
