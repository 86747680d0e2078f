//! Graceful shutdown: the port closes, attempts that end within the grace are recorded,
//! and those that do not are given back to the queue uncounted.

use std::time::Duration;

use dtp_contract::TaskStatus;
use dtp_engine::testing::TestEngine;
use serde_json::json;

use crate::api::EngineApi;
use crate::gates::{Gate, Gated};
use crate::{sql, PATIENCE};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_releases_an_attempt_that_outlives_the_grace() {
    let gate = Gate::default();
    let mut dtp = TestEngine::spawn_with_types(
        |config| config.worker.shutdown_grace = Duration::from_millis(200),
        |engine| engine.register(Gated(gate.clone())),
    )
    .await;
    let api = EngineApi::new(&dtp);
    let task = api.create_task(&json!({"type": "gated"})).await;
    gate.wait_until("the attempt started", |g| g.running() == 1).await;

    // The gate never opens: the grace passes, the attempt is released and its handler stopped.
    dtp.stop().await;

    gate.wait_until("the handler was told to stop", |g| g.stopped() == 1)
        .await;
    let refused = tokio::net::TcpStream::connect(("127.0.0.1", dtp.port())).await;
    assert!(refused.is_err(), "the port must be closed once stopped");
    let db = dtp.database();
    let row = sql::task_row(db, task.id);
    assert_eq!(
        (row.status.as_str(), row.retry_state.as_str()),
        ("PENDING", "NONE")
    );
    assert_eq!(row.attempt_count, 0, "a released attempt does not count");
    assert_eq!(
        (row.lease_token, row.worker_id, row.completed_at),
        (None, None, None)
    );
    let attempts = sql::attempt_rows(db, task.id);
    assert_eq!(attempts.len(), 1);
    assert!(attempts[0].finished_at.is_some());
    assert_eq!(attempts[0].outcome.as_deref(), Some("RELEASED"));
    assert_eq!(attempts[0].error.as_deref(), Some("released at shutdown"));

    // A restart on the same port and database takes the task up again, as attempt 1.
    let port = dtp.port();
    let successor = TestEngine::spawn_sharing_with_types(
        &dtp,
        |config| config.http_addr = format!("127.0.0.1:{port}"),
        |engine| engine.register(Gated(gate.clone())),
    )
    .await;
    assert_eq!(successor.port(), port);
    let resumed = EngineApi::new(&successor)
        .wait_for_status(task.id, TaskStatus::Running, PATIENCE)
        .await;
    assert_eq!(resumed.attempt_count, 1);
    let attempts = sql::attempt_rows(db, task.id);
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[1].attempt, 1);
    assert_eq!(attempts[1].worker_id, successor.worker().id());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_lets_an_attempt_finish_within_the_grace() {
    let gate = Gate::default();
    let mut dtp = TestEngine::spawn_with_types(
        |config| config.worker.shutdown_grace = PATIENCE,
        |engine| engine.register(Gated(gate.clone())),
    )
    .await;
    let api = EngineApi::new(&dtp);
    let task = api.create_task(&json!({"type": "gated"})).await;
    gate.wait_until("the attempt started", |g| g.running() == 1).await;

    // The attempt ends only after the stop began: the stop waits for it.
    dtp.begin_stop();
    gate.release(1);
    dtp.stop().await;

    let row = sql::task_row(dtp.database(), task.id);
    assert_eq!(row.status, "SUCCEEDED");
    assert_eq!(row.attempt_count, 1);
    let attempts = sql::attempt_rows(dtp.database(), task.id);
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].outcome.as_deref(), Some("SUCCEEDED"));
}
