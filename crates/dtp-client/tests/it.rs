//! The worker runtime against a real engine: it runs leased tasks to their results with the
//! checkpoint of an earlier attempt, fails misshapen payloads for good, stops a handler whose
//! task is canceled, and at shutdown lets running handlers finish within the grace and
//! releases the rest.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dtp_client::worker::{ExternalTask, Job, JobError, WorkerRuntime};
use dtp_client::DtpClient;
use dtp_contract::{CreateTaskRequest, RetryState, TaskResponse, TaskStatus};
use dtp_engine::testing::TestEngine;
use serde_json::{json, Value};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

const PATIENCE: Duration = Duration::from_secs(15);

#[derive(serde::Deserialize)]
struct Frame {
    n: u32,
    #[serde(default)]
    hold: bool,
    #[serde(default)]
    fail_first: bool,
}

/// `render`: renders frame `n`; a held frame waits until its attempt is stopped.
#[derive(Default)]
struct Render {
    stopped: AtomicUsize,
    started: AtomicUsize,
    changed: Notify,
}

struct Renderer(Arc<Render>);

impl ExternalTask for Renderer {
    const TYPE: &'static str = "render";
    type Payload = Frame;

    async fn run(&self, job: Job, frame: Frame) -> Result<Option<Value>, JobError> {
        self.0.started.fetch_add(1, Ordering::SeqCst);
        self.0.changed.notify_waiters();
        if frame.fail_first && job.attempt == 1 {
            job.checkpoint(json!({"rendered": frame.n / 2}));
            // Give the checkpoint a heartbeat to ride on before failing.
            tokio::time::sleep(Duration::from_millis(200)).await;
            return Err(JobError::retry("half done"));
        }
        if frame.hold {
            job.cancel.cancelled().await;
            self.0.stopped.fetch_add(1, Ordering::SeqCst);
            self.0.changed.notify_waiters();
            return Err(JobError::retry("stopped"));
        }
        Ok(Some(
            json!({"frame": frame.n, "resumedFrom": job.heartbeat_details}),
        ))
    }
}

impl Render {
    async fn wait_until(&self, what: &str, done: impl Fn(&Render) -> bool) {
        let waited = tokio::time::timeout(PATIENCE, async {
            loop {
                let changed = self.changed.notified();
                if done(self) {
                    return;
                }
                changed.await;
            }
        })
        .await;
        assert!(waited.is_ok(), "gave up waiting until {what}");
    }
}

struct Setup {
    dtp: TestEngine,
    client: DtpClient,
    _types: TypesFile,
}

struct TypesFile(std::path::PathBuf);

impl Drop for TypesFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

async fn setup(name: &str) -> Setup {
    let path = std::env::temp_dir().join(format!("dtp-client-it-{}-{name}.toml", std::process::id()));
    std::fs::write(
        &path,
        "[types.render]\nkind = \"external\"\nlease_ms = 600\nbackoff_base_ms = 10\nbackoff_max_ms = 20\n",
    )
    .unwrap();
    let types = TypesFile(path);
    let file = types.0.to_str().unwrap().to_owned();
    let dtp = TestEngine::spawn_with(|config| {
        config.worker_enabled = false;
        config.task_types_file = Some(file);
    })
    .await;
    let client = DtpClient::new(dtp.base_url(), Duration::from_secs(10)).unwrap();
    Setup {
        dtp,
        client,
        _types: types,
    }
}

async fn submit(client: &DtpClient, payload: Value) -> i64 {
    let request = CreateTaskRequest {
        task_type: "render".into(),
        payload,
        max_attempts: Some(3),
        idempotency_key: None,
        run_at: None,
        timeout_ms: None,
    };
    client.create_task(&request).await.unwrap().value.id
}

async fn finished(client: &DtpClient, id: i64) -> TaskResponse {
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let task = client.task(id).await.unwrap();
        if task.status.is_terminal() {
            return task;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "task {id} did not finish: {task:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn runtime(setup: &Setup, render: &Arc<Render>) -> WorkerRuntime {
    WorkerRuntime::new(setup.client.clone(), "render-worker")
        .register(Renderer(Arc::clone(render)))
        .concurrency(4)
        .long_poll(Duration::from_millis(500))
        .shutdown_grace(Duration::from_millis(300))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_leased_tasks_with_checkpoints_and_fails_misshapen_payloads() {
    let setup = setup("runs").await;
    let render = Arc::new(Render::default());
    let shutdown = CancellationToken::new();
    let worker = tokio::spawn(runtime(&setup, &render).run(shutdown.clone()));

    let plain = submit(&setup.client, json!({"n": 1})).await;
    let resumed = submit(&setup.client, json!({"n": 8, "fail_first": true})).await;
    let misshapen = submit(&setup.client, json!({"frame": "one"})).await;

    let done = finished(&setup.client, plain).await;
    assert_eq!(done.result, Some(json!({"frame": 1, "resumedFrom": null})));
    let done = finished(&setup.client, resumed).await;
    assert_eq!((done.status, done.attempt_count), (TaskStatus::Succeeded, 2));
    assert_eq!(
        done.result,
        Some(json!({"frame": 8, "resumedFrom": {"rendered": 4}}))
    );
    let done = finished(&setup.client, misshapen).await;
    assert_eq!(
        (done.status, done.retry_state),
        (TaskStatus::Failed, RetryState::NotRetryable)
    );
    assert!(done.last_error.unwrap().contains("missing field `n`"));
    let attempts = setup.client.attempts(plain).await.unwrap();
    assert_eq!(attempts[0].worker_id, "render-worker");

    shutdown.cancel();
    tokio::time::timeout(PATIENCE, worker).await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canceled_task_stops_its_handler_and_shutdown_releases_what_still_runs() {
    let setup = setup("stops").await;
    let render = Arc::new(Render::default());
    let shutdown = CancellationToken::new();
    let worker = tokio::spawn(runtime(&setup, &render).run(shutdown.clone()));

    let canceled = submit(&setup.client, json!({"n": 1, "hold": true})).await;
    render
        .wait_until("the held frame started", |r| {
            r.started.load(Ordering::SeqCst) == 1
        })
        .await;
    setup.client.cancel_task(canceled).await.unwrap();
    // The next heartbeat (a third of 600 ms) hears of it, and the handler is told to stop.
    render
        .wait_until("the handler was stopped", |r| {
            r.stopped.load(Ordering::SeqCst) == 1
        })
        .await;
    assert_eq!(
        setup.client.task(canceled).await.unwrap().status,
        TaskStatus::Canceled
    );

    let left_running = submit(&setup.client, json!({"n": 2, "hold": true})).await;
    render
        .wait_until("the second held frame started", |r| {
            r.started.load(Ordering::SeqCst) == 2
        })
        .await;
    shutdown.cancel();
    tokio::time::timeout(PATIENCE, worker).await.unwrap().unwrap();
    let released = setup.client.task(left_running).await.unwrap();
    assert_eq!(
        (released.status, released.attempt_count),
        (TaskStatus::Pending, 0)
    );
    let attempts = setup.client.attempts(left_running).await.unwrap();
    assert_eq!(attempts[0].outcome.as_deref(), Some("RELEASED"));
    drop(setup.dtp);
}
