//! HTTP-target task types from a types file, delivered to a receiver the test runs: what
//! each attempt sends, what each kind of answer makes of the task (result, retry, Retry-After,
//! no retry), timeouts, refused connections, cancel aborting a delivery in flight, and the
//! per-type concurrency limit across two engines.

use std::collections::BTreeSet;
use std::sync::Arc;

use dtp_contract::{RetryState, TaskResponse, TaskStatus, TaskTypeList};
use dtp_engine::testing::TestEngine;
use reqwest::StatusCode;
use serde_json::json;
use tokio::sync::Semaphore;

use crate::api::EngineApi;
use crate::gates::NO_HEARTBEAT_IN_TIME;
use crate::receiver::{Receiver, Reply};
use crate::types_files::TypesFile;
use crate::{sql, PATIENCE};

/// An engine running the types of `file`.
async fn engine_with(file: &TypesFile) -> TestEngine {
    TestEngine::spawn_with(|config| config.task_types_file = Some(file.path())).await
}

/// Waits until the task is finished (SUCCEEDED, FAILED or CANCELED).
async fn finished(api: &EngineApi, id: i64) -> TaskResponse {
    api.wait_for(id, "finished", PATIENCE, |t| t.status.is_terminal())
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_attempt_sends_the_task_and_a_json_answer_becomes_its_result() {
    let receiver = Receiver::start(|request, _| match request.path.as_str() {
        "/json" => Reply::json(200, &json!({"messageId": "m-1"})),
        _ => Reply::text(200, "{\"looks\": \"like json\"}"),
    })
    .await;
    std::env::set_var("DTP_IT_MAILER_TOKEN", "Bearer t0k3n");
    let file = TypesFile::write(&format!(
        r#"
        [types.send-email]
        kind = "http"
        url = "{json}"
        max_attempts = 5
        timeout_ms = 10000
        headers = {{ "X-Env" = "prod", "Authorization" = "${{DTP_IT_MAILER_TOKEN}}" }}

        [types.plain]
        kind = "http"
        url = "{text}"
        method = "PUT"
        "#,
        json = receiver.url("/json"),
        text = receiver.url("/text"),
    ));
    let dtp = engine_with(&file).await;
    let api = EngineApi::new(&dtp);

    let task = api
        .create_task(&json!({"type": "send-email", "payload": {"to": "a@example.com"}}))
        .await;
    assert_eq!(
        (task.max_attempts, task.timeout_ms),
        (5, 10_000),
        "the type's defaults"
    );
    let done = finished(&api, task.id).await;
    assert_eq!(
        (done.status, done.retry_state),
        (TaskStatus::Succeeded, RetryState::Completed)
    );
    assert_eq!(done.result, Some(json!({"messageId": "m-1"})));

    let request = &receiver.requests()[0];
    assert_eq!(
        (request.method.as_str(), request.path.as_str()),
        ("POST", "/json")
    );
    let id = task.id.to_string();
    for (header, expected) in [
        ("content-type", "application/json"),
        ("dtp-task-id", id.as_str()),
        ("dtp-task-type", "send-email"),
        ("dtp-attempt", "1"),
        ("idempotency-key", &format!("dtp-{id}")),
        ("x-env", "prod"),
        ("authorization", "Bearer t0k3n"),
    ] {
        assert_eq!(request.header(header), Some(expected), "{header}");
    }
    assert!(request.header("user-agent").unwrap().starts_with("dtp-engine/"));
    assert!(
        request.header("webhook-signature").is_none(),
        "no secret, no signature"
    );
    let created = serde_json::to_value(&task).unwrap();
    assert_eq!(
        request.body(),
        json!({
            "taskId": task.id, "type": "send-email", "attempt": 1, "maxAttempts": 5,
            "payload": {"to": "a@example.com"},
            "createdAt": created["createdAt"], "scheduledFor": created["scheduledFor"],
        })
    );

    // An answer that is not `application/json` leaves the result null.
    let plain = api.create_task(&json!({"type": "plain"})).await;
    let done = finished(&api, plain.id).await;
    assert_eq!((done.status, done.result), (TaskStatus::Succeeded, None));
    assert_eq!(receiver.requests()[1].method, "PUT");

    // The listing of types shows the target, with the value from the environment redacted.
    let types: TaskTypeList = api
        .client()
        .get(api.url("/task-types"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let email = types.types.iter().find(|t| t.name == "send-email").unwrap();
    let target = email.http.as_ref().unwrap();
    assert_eq!(target.url, receiver.url("/json"));
    assert_eq!(target.headers["authorization"], "[redacted]");
    assert_eq!(target.headers["x-env"], "prod");
    assert_eq!(
        (email.max_attempts, email.timeout_ms, email.concurrency),
        (5, 10_000, None)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5xx_is_retried_and_retry_after_replaces_the_backoff_up_to_its_cap() {
    let receiver = Receiver::start(|request, n| match (request.path.as_str(), n) {
        (_, 1..) => Reply::status(204),
        ("/flaky", 0) => Reply::text(503, "busy"),
        ("/throttled", 0) => Reply::status(429).with_header("retry-after", "1"),
        (_, 0) => Reply::status(503).with_header("retry-after", "3600"),
    })
    .await;
    let file = TypesFile::write(&format!(
        r#"
        [types.flaky]
        kind = "http"
        url = "{flaky}"
        backoff_base_ms = 10

        [types.throttled]
        kind = "http"
        url = "{throttled}"
        backoff_base_ms = 10
        backoff_max_ms = 60000

        [types.capped]
        kind = "http"
        url = "{capped}"
        backoff_base_ms = 10
        backoff_max_ms = 300
        "#,
        flaky = receiver.url("/flaky"),
        throttled = receiver.url("/throttled"),
        capped = receiver.url("/capped"),
    ));
    let dtp = engine_with(&file).await;
    let api = EngineApi::new(&dtp);
    let flaky = api.create_task(&json!({"type": "flaky"})).await;
    let throttled = api.create_task(&json!({"type": "throttled"})).await;
    let capped = api.create_task(&json!({"type": "capped"})).await;

    for task in [&flaky, &throttled, &capped] {
        let done = finished(&api, task.id).await;
        assert_eq!(
            (done.status, done.attempt_count),
            (TaskStatus::Succeeded, 2),
            "{done:?}"
        );
    }
    let attempts = api.attempts(flaky.id).await;
    assert_eq!(
        attempts[0].error.as_deref(),
        Some(format!("HTTP 503 from {}: busy", receiver.url("/flaky")).as_str())
    );
    let deliveries: Vec<_> = receiver
        .requests()
        .into_iter()
        .filter(|r| r.path == "/flaky")
        .collect();
    let keys: BTreeSet<_> = deliveries
        .iter()
        .map(|r| r.header("idempotency-key").unwrap().to_owned())
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from([format!("dtp-{}", flaky.id)]),
        "one key on every attempt"
    );
    let numbers: Vec<_> = deliveries
        .iter()
        .map(|r| r.header("dtp-attempt").unwrap().to_owned())
        .collect();
    assert_eq!(numbers, ["1", "2"]);

    // The retry fell due exactly the asked delay after the failed attempt ended (both are
    // the same statement's `now()`), or the type's cap when it asked for more.
    for (task, delay_ms) in [(&throttled, 1_000), (&capped, 300)] {
        let attempts = api.attempts(task.id).await;
        let waited = attempts[1].due_at.unwrap() - attempts[0].finished_at.unwrap();
        assert!(
            (delay_ms - 1..=delay_ms + 1).contains(&waited.num_milliseconds()),
            "task {} was due {waited} after its failure, not {delay_ms} ms",
            task.id
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_4xx_or_a_redirect_fails_the_task_at_once_without_following_it() {
    let receiver = Receiver::start(|request, _| match request.path.as_str() {
        "/invalid" => Reply::text(422, "missing field `to`"),
        "/moved" => Reply::status(302).with_header("location", "/elsewhere"),
        _ => Reply::status(200),
    })
    .await;
    let file = TypesFile::write(&format!(
        "[types.invalid]\nkind = \"http\"\nurl = \"{}\"\nmax_attempts = 5\n\
         [types.moved]\nkind = \"http\"\nurl = \"{}\"\nmax_attempts = 5\n",
        receiver.url("/invalid"),
        receiver.url("/moved"),
    ));
    let dtp = engine_with(&file).await;
    let api = EngineApi::new(&dtp);
    let invalid = api.create_task(&json!({"type": "invalid"})).await;
    let moved = api.create_task(&json!({"type": "moved"})).await;

    let done = finished(&api, invalid.id).await;
    assert_eq!(
        (done.status, done.retry_state, done.attempt_count),
        (TaskStatus::Failed, RetryState::NotRetryable, 1)
    );
    assert_eq!(
        done.last_error.as_deref(),
        Some(format!("HTTP 422 from {}: missing field `to`", receiver.url("/invalid")).as_str())
    );
    let done = finished(&api, moved.id).await;
    assert_eq!(
        (done.status, done.retry_state),
        (TaskStatus::Failed, RetryState::NotRetryable)
    );
    let paths: Vec<String> = receiver.requests().into_iter().map(|r| r.path).collect();
    assert!(
        !paths.contains(&"/elsewhere".to_owned()),
        "redirects are not followed: {paths:?}"
    );
    assert_eq!(paths.len(), 2, "one attempt each");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_slower_than_the_timeout_fails_the_attempt_and_its_request_is_dropped() {
    let receiver = Receiver::start(|_, _| Reply::Hold).await;
    let file = TypesFile::write(&format!(
        "[types.slow]\nkind = \"http\"\nurl = \"{}\"\ntimeout_ms = 200\nmax_attempts = 1\n",
        receiver.url("/slow")
    ));
    let dtp = engine_with(&file).await;
    let api = EngineApi::new(&dtp);
    let task = api.create_task(&json!({"type": "slow"})).await;

    let done = finished(&api, task.id).await;
    assert_eq!(
        (done.status, done.retry_state),
        (TaskStatus::Failed, RetryState::Exhausted)
    );
    assert_eq!(done.last_error.as_deref(), Some("timed out after 200 ms"));
    assert_eq!(
        api.attempts(task.id).await[0].outcome.as_deref(),
        Some("TIMED_OUT")
    );
    receiver
        .wait_until("the request was dropped", |r| r.aborted() == 1)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_fails_the_attempt_and_is_retried() {
    // A socket bound but never listening: connecting is refused, and no other test can take
    // the port meanwhile (a port merely freed could be reused by another test's server).
    let reserved = tokio::net::TcpSocket::new_v4().unwrap();
    reserved.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let closed_port = reserved.local_addr().unwrap().port();
    let file = TypesFile::write(&format!(
        "[types.down]\nkind = \"http\"\nurl = \"http://127.0.0.1:{closed_port}/hook\"\n\
         max_attempts = 2\nbackoff_base_ms = 10\n"
    ));
    let dtp = engine_with(&file).await;
    let api = EngineApi::new(&dtp);
    let task = api.create_task(&json!({"type": "down"})).await;

    let done = finished(&api, task.id).await;
    assert_eq!(
        (done.status, done.retry_state, done.attempt_count),
        (TaskStatus::Failed, RetryState::Exhausted, 2)
    );
    let errors: Vec<_> = api.attempts(task.id).await.into_iter().map(|a| a.error).collect();
    assert_eq!(
        errors,
        [
            Some("connection refused".to_owned()),
            Some("connection refused".to_owned())
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_aborts_the_request_in_flight() {
    let receiver = Receiver::start(|_, _| Reply::Hold).await;
    let file = TypesFile::write(&format!(
        "[types.held]\nkind = \"http\"\nurl = \"{}\"\n",
        receiver.url("/held")
    ));
    let dtp = TestEngine::spawn_with(|config| {
        config.task_types_file = Some(file.path());
        config.worker.lease = NO_HEARTBEAT_IN_TIME;
    })
    .await;
    let api = EngineApi::new(&dtp);
    let task = api.create_task(&json!({"type": "held"})).await;
    receiver
        .wait_until("the delivery arrived", |r| r.in_flight() == 1)
        .await;

    assert_eq!(api.cancel(task.id).await.status(), StatusCode::NO_CONTENT);
    receiver
        .wait_until("the delivery was aborted", |r| r.aborted() == 1)
        .await;
    let canceled = api.task(task.id).await;
    assert_eq!(canceled.status, TaskStatus::Canceled);
    assert_eq!(
        api.attempts(task.id).await[0].outcome.as_deref(),
        Some("CANCELED")
    );
}

/// Tasks of the limited type, more than the limit lets run at once.
const LIMITED_TASKS: usize = 12;
const LIMIT: usize = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_concurrency_limit_holds_across_two_engines() {
    let gate = Arc::new(Semaphore::new(0));
    let held = Arc::clone(&gate);
    let receiver = Receiver::start(move |_, _| Reply::HoldUntil(Arc::clone(&held))).await;
    let file = TypesFile::write(&format!(
        "[types.limited]\nkind = \"http\"\nurl = \"{}\"\nconcurrency = {LIMIT}\n",
        receiver.url("/limited")
    ));
    // Each engine has fewer slots than the limit: a round's worth in flight needs both.
    let first = TestEngine::spawn_with(|config| {
        config.task_types_file = Some(file.path());
        config.worker.concurrency = LIMIT - 1;
    })
    .await;
    let second = TestEngine::spawn_sharing(&first, |config| {
        config.task_types_file = Some(file.path());
        config.worker.concurrency = LIMIT - 1;
    })
    .await;
    let api = EngineApi::new(&first);
    let tasks: Vec<_> = (0..LIMITED_TASKS)
        .map(|n| json!({"type": "limited", "payload": {"n": n}}))
        .collect();
    let response = api.post_batch(&json!({"tasks": tasks})).await;
    assert_eq!(response.status(), StatusCode::CREATED);

    // Let the deliveries through a round at a time: each round the engines fill what the
    // limit frees, and the receiver would see more than the limit at once if either overshot.
    let mut answered = 0;
    while answered < LIMITED_TASKS {
        let round = LIMIT.min(LIMITED_TASKS - answered);
        receiver
            .wait_until("the limit's worth of deliveries arrived", |r| {
                r.in_flight() == round
            })
            .await;
        gate.add_permits(round);
        answered += round;
        receiver
            .wait_until("the round was answered", |r| {
                r.requests().len() - r.in_flight() >= answered
            })
            .await;
    }

    let db = first.database();
    crate::wait_until("every limited task succeeded", PATIENCE, || {
        sql::count_tasks_in(db, "SUCCEEDED") == LIMITED_TASKS as i64
    })
    .await;
    assert_eq!(
        receiver.max_in_flight(),
        LIMIT,
        "never more than the limit at once"
    );
    assert_eq!(
        receiver.requests().len(),
        LIMITED_TASKS,
        "each task delivered once"
    );
    let claimers: BTreeSet<String> = sql::all_attempt_rows(db)
        .into_iter()
        .map(|a| a.worker_id)
        .collect();
    let engines = BTreeSet::from([first.worker().id().to_owned(), second.worker().id().to_owned()]);
    assert_eq!(claimers, engines, "both engines claimed under the limit");
}
