//! Which task types an engine accepts: the demo types (unless turned off), typed handlers
//! registered on the builder, and the types file; what `GET /task-types` and the 422 for an
//! unknown type say of them; typed handlers' payloads, results and retries; a types file that
//! cannot be used stops the binary with one line; a restart with new settings moves pending
//! tasks to the queue their type now has.

use std::process::Command;
use std::time::Duration;

use dtp_contract::{RetryState, TaskStatus, TaskTypeKind, TaskTypeList};
use dtp_engine::task_types::{Task, TaskContext, TaskError, TaskOutput};
use dtp_engine::testing::TestEngine;
use serde::Deserialize;
use serde_json::json;

use crate::api::{expect_error, EngineApi};
use crate::receiver::{Receiver, Reply};
use crate::types_files::TypesFile;
use crate::{sql, stepped, PATIENCE};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Invoice {
    customer: String,
    cents: u64,
}

/// `invoice`: a typed handler with a strict payload; its result, failures and retries follow
/// what the payload asks for.
struct SendInvoice;

impl Task for SendInvoice {
    const TYPE: &'static str = "invoice";
    type Payload = Invoice;

    async fn run(&self, ctx: TaskContext, invoice: Invoice) -> Result<TaskOutput, TaskError> {
        match (invoice.customer.as_str(), invoice.cents) {
            ("huge", _) => Ok(Some(json!("x".repeat(70_000)))),
            ("busy", _) if ctx.attempt == 1 => {
                Err(TaskError::retry_after("busy", Duration::from_millis(250)))
            }
            (_, 0) => Err(TaskError::not_retryable("nothing to invoice")),
            (customer, cents) => Ok(Some(
                json!({"sentTo": customer, "cents": cents, "task": ctx.task_id}),
            )),
        }
    }
}

async fn types_of(api: &EngineApi) -> TaskTypeList {
    api.client()
        .get(api.url("/task-types"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_handlers_get_their_payload_keep_their_result_and_say_whether_to_retry() {
    let dtp = TestEngine::spawn_with_types(|_| {}, |engine| engine.register(SendInvoice)).await;
    let api = EngineApi::new(&dtp);
    let submit = |payload: serde_json::Value| {
        let api = &api;
        async move {
            api.create_task(&json!({"type": "invoice", "payload": payload, "maxAttempts": 3}))
                .await
        }
    };
    let paid = submit(json!({"customer": "ada", "cents": 500})).await;
    let empty = submit(json!({"customer": "bob", "cents": 0})).await;
    // A payload the handler could never take is refused at submission, not run to fail.
    let misshapen = api
        .post_task(&json!({"type": "invoice", "payload": {"customer": "eve", "amount": 5}}))
        .await;
    let error = expect_error(
        misshapen,
        reqwest::StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_FAILED",
    )
    .await;
    assert!(
        error
            .message
            .starts_with("payload is not what invoice takes: unknown field `amount`"),
        "{error:?}"
    );
    let huge = submit(json!({"customer": "huge", "cents": 1})).await;
    let busy = submit(json!({"customer": "busy", "cents": 1})).await;

    let done = api
        .wait_for(paid.id, "finished", PATIENCE, |t| t.status.is_terminal())
        .await;
    assert_eq!(
        done.result,
        Some(json!({"sentTo": "ada", "cents": 500, "task": paid.id}))
    );
    for (task, error) in [
        (&empty, "nothing to invoice"),
        (&huge, "the result is 70002 bytes of JSON; at most 65536 are kept"),
    ] {
        let done = api
            .wait_for(task.id, "finished", PATIENCE, |t| t.status.is_terminal())
            .await;
        assert_eq!(
            (done.status, done.retry_state, done.attempt_count),
            (TaskStatus::Failed, RetryState::NotRetryable, 1),
            "{done:?}"
        );
        let last_error = done.last_error.unwrap();
        assert!(last_error.starts_with(error), "{last_error}");
        assert_eq!(done.result, None);
    }
    let done = api
        .wait_for(busy.id, "finished", PATIENCE, |t| t.status.is_terminal())
        .await;
    assert_eq!((done.status, done.attempt_count), (TaskStatus::Succeeded, 2));
    let attempts = api.attempts(busy.id).await;
    let waited = attempts[1].due_at.unwrap() - attempts[0].finished_at.unwrap();
    assert!(
        (249..=251).contains(&waited.num_milliseconds()),
        "retried after {waited}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listing_the_spec_and_the_422_name_exactly_the_registered_types() {
    let file = TypesFile::write(
        "[types.resize-image]\nkind = \"external\"\nlease_ms = 60000\nconcurrency = 4\nmax_timeout_ms = 120000\n\
         [types.notify]\nkind = \"http\"\nurl = \"https://hooks.example.com/notify\"\nmax_attempts = 7\n",
    );
    let dtp = TestEngine::spawn_with_types(
        |config| {
            config.demo_types = false;
            config.task_types_file = Some(file.path());
            config.worker_enabled = false;
        },
        |engine| engine.register(SendInvoice),
    )
    .await;
    let api = EngineApi::new(&dtp);

    let types = types_of(&api).await.types;
    let names: Vec<&str> = types.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["invoice", "notify", "resize-image"]);
    let kinds: Vec<TaskTypeKind> = types.iter().map(|t| t.kind).collect();
    assert_eq!(
        kinds,
        [TaskTypeKind::Handler, TaskTypeKind::Http, TaskTypeKind::External]
    );
    let resize = &types[2];
    assert_eq!(
        (resize.lease_ms, resize.concurrency, resize.max_attempts),
        (Some(60_000), Some(4), 3)
    );
    // The ceiling lowers the engine's default timeout and refuses a longer one.
    assert_eq!((resize.timeout_ms, resize.max_timeout_ms), (120_000, 120_000));
    assert_eq!(types[1].max_timeout_ms, 86_400_000);
    let too_long = api
        .post_task(&json!({"type": "resize-image", "timeoutMs": 120_001}))
        .await;
    let error = expect_error(
        too_long,
        reqwest::StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_FAILED",
    )
    .await;
    assert_eq!(
        error.message,
        "timeoutMs of a resize-image task must be at most 120000, got 120001"
    );
    let engine_retry = dtp.config().worker.retry;
    assert_eq!(resize.backoff_base_ms, engine_retry.base.as_millis() as u64);
    assert_eq!(types[1].max_attempts, 7);
    assert_eq!(types[1].http.as_ref().unwrap().method, "POST");

    let error = expect_error(
        api.post_task(&json!({"type": "demo"})).await,
        reqwest::StatusCode::UNPROCESSABLE_ENTITY,
        "UNKNOWN_TASK_TYPE",
    )
    .await;
    assert_eq!(
        error.message,
        "unknown task type \"demo\"; known types: invoice, notify, resize-image"
    );
    let spec: serde_json::Value = api
        .client()
        .get(api.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        spec["components"]["schemas"]["CreateTaskRequest"]["properties"]["type"]["enum"],
        json!(["invoice", "notify", "resize-image"])
    );
    // An external type's task is accepted and left for workers: the engine never claims it.
    let external = api.create_task(&json!({"type": "resize-image"})).await;
    assert_eq!(dtp.worker().run_due_tasks().await.unwrap(), 0);
    assert_eq!(api.task(external.id).await.status, TaskStatus::Pending);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_with_new_settings_moves_pending_tasks_to_their_type_s_queue() {
    let receiver = Receiver::start(|_, _| Reply::status(200)).await;
    let external = TypesFile::write("[types.report]\nkind = \"external\"\n");
    let mut before = TestEngine::spawn_with(|config| {
        config.task_types_file = Some(external.path());
        config.worker_enabled = false;
    })
    .await;
    let api = EngineApi::new(&before);
    let task = api.create_task(&json!({"type": "report"})).await;
    assert!(sql::in_type_queue(before.database(), task.id));
    before.stop().await;

    let http = TypesFile::write(&format!(
        "[types.report]\nkind = \"http\"\nurl = \"{}\"\n",
        receiver.url("/report")
    ));
    let after = TestEngine::spawn_sharing(&before, |config| config.task_types_file = Some(http.path())).await;
    let done = EngineApi::new(&after)
        .wait_for_status(task.id, TaskStatus::Succeeded, PATIENCE)
        .await;
    assert_eq!(done.attempt_count, 1);
    assert!(!sql::in_type_queue(after.database(), task.id));
}

/// Starts the stock binary with `env`; it must exit at once with code 1 and one line on stderr.
fn refused_start(env: &[(&str, &str)]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_dtp-engine"))
        .env("DTP_DATABASE_URL", "postgres://postgres@127.0.0.1:1/never")
        .env("DTP_HTTP_ADDR", "127.0.0.1:0")
        .env("DTP_AUTH", "disabled")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8(output.stderr).unwrap();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    lines[0].to_owned()
}

#[test]
fn a_types_file_that_cannot_be_used_stops_the_engine_with_one_line() {
    let http = "kind = \"http\"\nurl = \"http://127.0.0.1:9/x\"\n";
    let cases = [
        (
            "[types.a]\nkind = \"http\"\nurl = ",
            "line 3, column 7: string values must be quoted",
        ),
        (
            &format!("[types.a]\n{http}retries = 2\n"),
            "task type \"a\": retries: unknown field",
        ),
        (
            &format!("[types.a]\n{http}max_attempts = 500\n"),
            "task type \"a\": max_attempts: must be between 1 and 100, got 500",
        ),
        (
            &format!("[types.a]\n{http}signing_secret_env = \"DTP_IT_UNSET_SECRET\"\n"),
            "task type \"a\": signing_secret_env: environment variable DTP_IT_UNSET_SECRET is not set",
        ),
        (
            &format!("[types.a]\n{http}backoff_base_ms = 500\nbackoff_max_ms = 100\n"),
            "task type \"a\": backoff_max_ms: must not be below backoff_base_ms",
        ),
        (
            &format!("[types.demo]\n{http}"),
            "task type \"demo\": is registered twice",
        ),
        (
            &format!("[types.a]\n{http}[types.a]\n{http}"),
            "line 4, column 8: duplicate key",
        ),
    ];
    for (text, expected) in cases {
        let file = TypesFile::write(text);
        let line = refused_start(&[("DTP_TASK_TYPES_FILE", &file.path())]);
        assert!(line.starts_with("dtp-engine: start-up failed: "), "{line}");
        assert!(line.contains(&file.path()), "names the file: {line}");
        assert!(
            line.contains(expected),
            "{text:?}\n  gave {line}\n  expected {expected}"
        );
    }
    let line = refused_start(&[("DTP_TASK_TYPES_FILE", "/nonexistent/types.toml")]);
    assert!(
        line.contains("/nonexistent/types.toml: cannot read the file"),
        "{line}"
    );
    // With the demo types off, a file may name a type `demo`.
    let file = TypesFile::write(&format!("[types.demo]\n{http}"));
    let line = refused_start(&[("DTP_TASK_TYPES_FILE", &file.path()), ("DTP_DEMO_TYPES", "false")]);
    assert!(
        line.contains("cannot connect to Postgres"),
        "the types were fine: {line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stepped_engine_runs_typed_handlers_too() {
    let dtp = TestEngine::spawn_with_types(stepped, |engine| engine.register(SendInvoice)).await;
    let api = EngineApi::new(&dtp);
    let task = api
        .create_task(&json!({"type": "invoice", "payload": {"customer": "c", "cents": 1}}))
        .await;
    assert_eq!(dtp.worker().run_due_tasks().await.unwrap(), 1);
    assert_eq!(api.task(task.id).await.status, TaskStatus::Succeeded);
}
