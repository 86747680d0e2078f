//! The worker API against a real engine, through `dtp-client`: leasing and completing with a
//! result; failing (retried with backoff or `retryAfterMs`, heartbeat details carried to the
//! next attempt; or not retryable); releasing; long-polls woken by a submission on this or
//! another engine; heartbeats keeping a lease past `lease_ms`; a lease that expired, was
//! rescued and given to another worker refusing the first worker's late calls; cancel while
//! leased; the concurrency limit across workers and engines; and bad bodies and tokens.

use std::time::Duration;

use chrono::Utc;
use dtp_client::{DtpClient, DtpError};
use dtp_contract::{FailRequest, Lease, LeaseLostReason, LeaseRequest, RetryState, TaskStatus};
use dtp_engine::testing::TestEngine;
use reqwest::StatusCode;
use serde_json::json;

use crate::api::{expect_error, EngineApi};
use crate::types_files::TypesFile;
use crate::{stepped, PATIENCE};

/// `resize`: external, short backoff; `render`: external with a limit of 2; `notify`: an HTTP type.
const TYPES: &str =
    "[types.resize]\nkind = \"external\"\nmax_attempts = 3\nbackoff_base_ms = 10\nbackoff_max_ms = 400\n\
    [types.render]\nkind = \"external\"\nconcurrency = 2\n\
    [types.brief]\nkind = \"external\"\nlease_ms = 1000\n\
    [types.notify]\nkind = \"http\"\nurl = \"http://127.0.0.1:9/notify\"\n";

struct Workers {
    dtp: TestEngine,
    api: EngineApi,
    client: DtpClient,
    _types: TypesFile,
}

/// A stepped engine (no claim loop, the rescuer run by hand) with the external types above.
async fn workers() -> Workers {
    let types = TypesFile::write(TYPES);
    let dtp = TestEngine::spawn_with(|config| {
        stepped(config);
        config.task_types_file = Some(types.path());
    })
    .await;
    let api = EngineApi::new(&dtp);
    let client = DtpClient::new(dtp.base_url(), Duration::from_secs(40)).unwrap();
    Workers {
        dtp,
        api,
        client,
        _types: types,
    }
}

fn ask(worker_id: &str, types: &[&str], max: i32, wait_ms: i32) -> LeaseRequest {
    LeaseRequest {
        worker_id: worker_id.into(),
        types: types.iter().map(|t| (*t).to_owned()).collect(),
        max: Some(max),
        wait_ms: Some(wait_ms),
    }
}

impl Workers {
    async fn submit(&self, task_type: &str, payload: serde_json::Value) -> i64 {
        self.api
            .create_task(&json!({"type": task_type, "payload": payload}))
            .await
            .id
    }

    /// Leases exactly one task, which must be due.
    async fn lease_one(&self, worker_id: &str, task_type: &str) -> Lease {
        let mut leases = self
            .client
            .lease(&ask(worker_id, &[task_type], 1, 0))
            .await
            .unwrap()
            .leases;
        assert_eq!(leases.len(), 1, "one due {task_type} task");
        leases.remove(0)
    }

    fn fail(error: &str, retryable: bool, retry_after_ms: Option<i32>) -> FailRequest {
        FailRequest {
            error: error.into(),
            retryable,
            retry_after_ms,
        }
    }
}

fn lost(result: Result<impl std::fmt::Debug, DtpError>) -> LeaseLostReason {
    match result {
        Err(DtpError::LeaseLost { reason, .. }) => reason,
        other => panic!("expected a lost lease, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leased_task_completes_with_its_result_and_its_lease_then_refuses_everything() {
    let w = workers().await;
    let id = w.submit("resize", json!({"image": "cat.png"})).await;
    let lease = w.lease_one("resizer-1", "resize").await;

    assert_eq!(
        (
            lease.task_id,
            lease.task_type.as_str(),
            lease.attempt,
            lease.max_attempts
        ),
        (id, "resize", 1, 3)
    );
    assert_eq!(lease.payload, json!({"image": "cat.png"}));
    assert_eq!(lease.heartbeat_details, None);
    assert!(lease.lease_expires_at > Utc::now());
    assert!(
        lease.lease_token.len() >= 43,
        "at least 256 bits of token: {}",
        lease.lease_token
    );
    let running = w.api.task(id).await;
    assert_eq!(running.status, TaskStatus::Running);

    w.client
        .complete(&lease.lease_token, Some(json!({"width": 64})))
        .await
        .unwrap();
    let done = w.api.task(id).await;
    assert_eq!(
        (done.status, done.retry_state),
        (TaskStatus::Succeeded, RetryState::Completed)
    );
    assert_eq!(done.result, Some(json!({"width": 64})));
    let attempts = w.api.attempts(id).await;
    assert_eq!(
        (attempts[0].worker_id.as_str(), attempts[0].outcome.as_deref()),
        ("resizer-1", Some("SUCCEEDED"))
    );

    assert_eq!(
        lost(w.client.complete(&lease.lease_token, None).await),
        LeaseLostReason::Finished
    );
    assert_eq!(
        lost(w.client.heartbeat(&lease.lease_token, None).await),
        LeaseLostReason::Finished
    );
    assert_eq!(
        lost(w.client.release(&lease.lease_token).await),
        LeaseLostReason::Finished
    );
    assert_eq!(w.api.task(id).await, done, "nothing changed");
    // Nothing else is due: an empty answer, after the wait.
    let empty = w
        .client
        .lease(&ask("resizer-1", &["resize"], 5, 50))
        .await
        .unwrap();
    assert!(empty.leases.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_attempt_is_retried_with_the_checkpoint_of_its_last_heartbeat() {
    let w = workers().await;
    let id = w.submit("resize", json!(null)).await;
    let first = w.lease_one("w", "resize").await;
    let extended = w
        .client
        .heartbeat(&first.lease_token, Some(json!({"row": 41})))
        .await
        .unwrap();
    assert!(extended.lease_expires_at >= first.lease_expires_at);
    w.client
        .fail(
            &first.lease_token,
            &Workers::fail("GPU out of memory", true, None),
        )
        .await
        .unwrap();

    let retried = w.api.task(id).await;
    assert_eq!(
        (retried.status, retried.retry_state),
        (TaskStatus::Pending, RetryState::RetryScheduled)
    );
    assert_eq!(retried.last_error.as_deref(), Some("GPU out of memory"));
    // The backoff is short (10 ms): a long-poll waits for it, woken by its due time.
    let second = w
        .client
        .lease(&ask("w", &["resize"], 1, 10_000))
        .await
        .unwrap()
        .leases
        .remove(0);
    assert_eq!((second.task_id, second.attempt), (id, 2));
    assert_eq!(second.heartbeat_details, Some(json!({"row": 41})));

    // A retry after the worker's own delay, capped at the type's backoff_max_ms (400 ms).
    w.client
        .fail(&second.lease_token, &Workers::fail("busy", true, Some(60_000)))
        .await
        .unwrap();
    let attempts = w.api.attempts(id).await;
    let waited = w.api.task(id).await.scheduled_for - attempts[1].finished_at.unwrap();
    assert!(
        (399..=401).contains(&waited.num_milliseconds()),
        "due {waited} after the failure"
    );
    let third = w
        .client
        .lease(&ask("w", &["resize"], 1, 10_000))
        .await
        .unwrap()
        .leases
        .remove(0);
    w.client
        .fail(&third.lease_token, &Workers::fail("corrupt image", false, None))
        .await
        .unwrap();
    let failed = w.api.task(id).await;
    assert_eq!(
        (failed.status, failed.retry_state, failed.attempt_count),
        (TaskStatus::Failed, RetryState::NotRetryable, 3)
    );
    assert_eq!(failed.last_error.as_deref(), Some("corrupt image"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_released_task_is_due_again_at_once_and_the_attempt_does_not_count() {
    let w = workers().await;
    let id = w.submit("resize", json!(null)).await;
    let lease = w.lease_one("leaving", "resize").await;
    w.client.release(&lease.lease_token).await.unwrap();

    let released = w.api.task(id).await;
    assert_eq!(
        (released.status, released.attempt_count),
        (TaskStatus::Pending, 0)
    );
    assert_eq!(w.api.attempts(id).await[0].outcome.as_deref(), Some("RELEASED"));
    let again = w.lease_one("staying", "resize").await;
    assert_eq!(again.attempt, 1);
    assert_eq!(
        lost(w.client.complete(&lease.lease_token, None).await),
        LeaseLostReason::Released
    );
    w.client.complete(&again.lease_token, None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_is_woken_by_a_submission_here_or_on_another_engine() {
    let w = workers().await;
    let other = TestEngine::spawn_sharing(&w.dtp, |config| {
        stepped(config);
        config.task_types_file = Some(w._types.path());
    })
    .await;
    let other_api = EngineApi::new(&other);
    for (submit_on, label) in [(&w.api, "this engine"), (&other_api, "another engine")] {
        // Nothing is due and nothing will fall due: only a wake-up ends the wait in time.
        let client = w.client.clone();
        let poll = tokio::spawn(async move { client.lease(&ask("w", &["resize"], 1, 30_000)).await });
        wait_until_polling(&w.api, 1).await;
        let id = submit_on.create_task(&json!({"type": "resize"})).await.id;
        let leased = tokio::time::timeout(PATIENCE, poll)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(leased.leases.len(), 1, "submitted on {label}");
        assert_eq!(leased.leases[0].task_id, id);
        w.client
            .complete(&leased.leases[0].lease_token, None)
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_answers_a_waiting_lease_request_at_once() {
    let w = workers().await;
    let client = w.client.clone();
    let poll = tokio::spawn(async move { client.lease(&ask("w", &["resize"], 1, 30_000)).await });
    wait_until_polling(&w.api, 1).await;
    w.dtp.begin_stop();
    // Without an answer at shutdown, the request would wait its 30 s (or be cut off when the
    // server's grace ends), and the engine could not stop before.
    let answered = tokio::time::timeout(PATIENCE, poll)
        .await
        .expect("answered at shutdown, not at the end of its wait")
        .unwrap()
        .unwrap();
    assert!(answered.leases.is_empty());
}

/// Waits until `n` lease requests are waiting in the engine (its `dtp_lease_polls_waiting`).
async fn wait_until_polling(api: &EngineApi, n: i64) {
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let metrics = api
            .client()
            .get(api.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let waiting = metrics
            .lines()
            .find_map(|l| l.strip_prefix("dtp_lease_polls_waiting "))
            .and_then(|v| v.trim().parse::<i64>().ok());
        if waiting == Some(n) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never saw {n} waiting polls: {waiting:?}"
        );
        tokio::time::sleep(crate::POLL_EVERY).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_keep_a_lease_past_its_length_and_a_silent_worker_loses_it_to_another() {
    let w = workers().await;
    // `brief` leases last a second. A worker that heartbeats keeps its task well past that.
    let kept = w.submit("brief", json!(null)).await;
    let lease = w.lease_one("steady", "brief").await;
    let mut expires_at = lease.lease_expires_at;
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        expires_at = w
            .client
            .heartbeat(&lease.lease_token, None)
            .await
            .unwrap()
            .lease_expires_at;
        assert_eq!(w.dtp.rescuer().rescue_expired_leases().await.unwrap(), 0);
    }
    assert!(expires_at > lease.lease_expires_at + chrono::Duration::milliseconds(1_000));
    w.client.complete(&lease.lease_token, None).await.unwrap();
    assert_eq!(w.api.task(kept).await.status, TaskStatus::Succeeded);

    // A worker that stops heartbeating: its lease runs out, the rescuer gives the task to
    // another worker, and the first one's late calls change nothing.
    let id = w.submit("brief", json!(null)).await;
    let silent = w.lease_one("silent", "brief").await;
    let until_expired = (silent.lease_expires_at - Utc::now())
        .to_std()
        .unwrap_or_default();
    tokio::time::sleep(until_expired + Duration::from_millis(20)).await;
    assert_eq!(
        lost(w.client.heartbeat(&silent.lease_token, None).await),
        LeaseLostReason::Expired
    );
    assert_eq!(w.dtp.rescuer().rescue_expired_leases().await.unwrap(), 1);
    let rescued = w.api.attempts(id).await;
    assert_eq!(rescued[0].outcome.as_deref(), Some("LOST"));
    let taken_over = w.lease_one("successor", "brief").await;
    assert_eq!(taken_over.attempt, 2);
    w.client
        .complete(&taken_over.lease_token, Some(json!("by the successor")))
        .await
        .unwrap();

    assert_eq!(
        lost(w.client.complete(&silent.lease_token, Some(json!("late"))).await),
        LeaseLostReason::Expired
    );
    assert_eq!(
        lost(
            w.client
                .fail(&silent.lease_token, &Workers::fail("late", true, None))
                .await
        ),
        LeaseLostReason::Expired
    );
    let done = w.api.task(id).await;
    assert_eq!(
        (done.status, done.result),
        (TaskStatus::Succeeded, Some(json!("by the successor")))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_canceled_while_leased_refuses_its_worker() {
    let w = workers().await;
    let id = w.submit("resize", json!(null)).await;
    let lease = w.lease_one("w", "resize").await;
    assert_eq!(w.api.cancel(id).await.status(), StatusCode::NO_CONTENT);

    assert_eq!(
        lost(w.client.heartbeat(&lease.lease_token, None).await),
        LeaseLostReason::Canceled
    );
    assert_eq!(
        lost(w.client.complete(&lease.lease_token, Some(json!(1))).await),
        LeaseLostReason::Canceled
    );
    let canceled = w.api.task(id).await;
    assert_eq!((canceled.status, canceled.result), (TaskStatus::Canceled, None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_limit_holds_across_workers_and_engines() {
    let w = workers().await;
    let other = TestEngine::spawn_sharing(&w.dtp, |config| {
        stepped(config);
        config.task_types_file = Some(w._types.path());
    })
    .await;
    let other_client = DtpClient::new(other.base_url(), Duration::from_secs(10)).unwrap();
    for n in 0..6 {
        w.submit("render", json!({"frame": n})).await;
    }
    // Four workers ask at once, two on each engine, each for up to five.
    let asks = [&w.client, &w.client, &other_client, &other_client].map(|client| {
        let client = client.clone();
        tokio::spawn(async move { client.lease(&ask("w", &["render"], 5, 0)).await.unwrap().leases })
    });
    let mut held = Vec::new();
    for asked in asks {
        held.extend(asked.await.unwrap());
    }
    assert_eq!(held.len(), 2, "the limit is 2: {held:?}");
    assert!(w
        .client
        .lease(&ask("w", &["render"], 5, 0))
        .await
        .unwrap()
        .leases
        .is_empty());
    w.client.complete(&held[0].lease_token, None).await.unwrap();
    let next = other_client
        .lease(&ask("w", &["render"], 5, 0))
        .await
        .unwrap()
        .leases;
    assert_eq!(next.len(), 1, "one slot freed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_and_tokens_are_refused_and_change_nothing() {
    let w = workers().await;
    let id = w.submit("resize", json!(null)).await;
    let post = |path: &str, body: serde_json::Value| w.api.client().post(w.api.url(path)).json(&body).send();
    for (body, status, code) in [
        (
            json!({"workerId": "w", "types": ["nope"]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "UNKNOWN_TASK_TYPE",
        ),
        (
            json!({"workerId": "w", "types": ["notify"]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "NOT_EXTERNAL_TYPE",
        ),
        (
            json!({"workerId": "w", "types": ["resize"], "max": 0}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_FAILED",
        ),
        (
            json!({"workerId": "w", "types": ["resize"], "waitMs": 30001}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_FAILED",
        ),
        (
            json!({"workerId": "", "types": ["resize"]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_FAILED",
        ),
        (
            json!({"workerId": "w", "types": []}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_FAILED",
        ),
        (
            json!({"types": ["resize"]}),
            StatusCode::BAD_REQUEST,
            "INVALID_BODY",
        ),
        (
            json!({"workerId": "w", "types": ["resize"], "extra": 1}),
            StatusCode::BAD_REQUEST,
            "INVALID_BODY",
        ),
    ] {
        let error = expect_error(post("/leases", body.clone()).await.unwrap(), status, code).await;
        if code == "NOT_EXTERNAL_TYPE" || code == "UNKNOWN_TASK_TYPE" {
            assert!(
                error.message.contains("external types: brief, render, resize"),
                "{error:?}"
            );
        }
    }
    assert_eq!(
        w.api.task(id).await.status,
        TaskStatus::Pending,
        "nothing was leased"
    );

    let lease = w.lease_one("w", "resize").await;
    let mut forged = lease.lease_token.clone().into_bytes();
    let last = forged.len() - 5;
    forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    for token in ["not-a-token", "AAAA", forged.as_str()] {
        for action in ["heartbeat", "complete"] {
            expect_error(
                post(&format!("/leases/{token}/{action}"), json!({}))
                    .await
                    .unwrap(),
                StatusCode::NOT_FOUND,
                "LEASE_NOT_FOUND",
            )
            .await;
        }
    }
    let path = format!("/leases/{}", lease.lease_token);
    for (action, body, code) in [
        ("fail", json!({"error": ""}), "VALIDATION_FAILED"),
        (
            "fail",
            json!({"error": "x", "retryAfterMs": -1}),
            "VALIDATION_FAILED",
        ),
        ("fail", json!({"retryable": false}), "INVALID_BODY"),
        (
            "heartbeat",
            json!({"details": "x".repeat(70_000)}),
            "VALIDATION_FAILED",
        ),
        ("heartbeat", json!({"detail": 1}), "INVALID_BODY"),
    ] {
        let status = if code == "INVALID_BODY" {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::UNPROCESSABLE_ENTITY
        };
        expect_error(
            post(&format!("{path}/{action}"), body).await.unwrap(),
            status,
            code,
        )
        .await;
    }
    let still = w.api.task(id).await;
    assert_eq!(
        (still.status, still.attempt_count, still.last_error),
        (TaskStatus::Running, 1, None)
    );

    // A result the task cannot keep fails it for good, and says so.
    let error = expect_error(
        post(&format!("{path}/complete"), json!({"result": "x".repeat(70_000)}))
            .await
            .unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "RESULT_NOT_KEPT",
    )
    .await;
    assert!(error.message.contains("failed as not retryable"), "{error:?}");
    let failed = w.api.task(id).await;
    assert_eq!(
        (failed.status, failed.retry_state),
        (TaskStatus::Failed, RetryState::NotRetryable)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_whose_worker_left_leases_nothing() {
    use tokio::io::AsyncWriteExt;

    let w = workers().await;
    let body = json!({"workerId": "gone", "types": ["resize"], "waitMs": 30_000}).to_string();
    let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", w.dtp.port()))
        .await
        .unwrap();
    let request = format!(
        "POST /leases HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    socket.write_all(request.as_bytes()).await.unwrap();
    wait_until_polling(&w.api, 1).await;
    drop(socket);

    // The submission wakes the waiting request, which sees its worker gone and leases nothing.
    let id = w.submit("resize", json!(null)).await;
    wait_until_polling(&w.api, 0).await;
    let task = w.api.task(id).await;
    assert_eq!((task.status, task.attempt_count), (TaskStatus::Pending, 0));
    assert!(w.api.attempts(id).await.is_empty());
    assert_eq!(w.lease_one("present", "resize").await.task_id, id);
}
