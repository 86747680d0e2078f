//! The example worker of the README (`examples/python-worker/worker.py`) against a real
//! engine: it runs tasks of an external type to their results, fails those whose work
//! fails (retried, then exhausted), stops cleanly on SIGTERM; and a task it held when it was
//! killed with SIGKILL is rescued once its lease expires and finished by another worker.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use dtp_contract::{RetryState, TaskStatus};
use dtp_engine::testing::TestEngine;
use serde_json::json;

use crate::api::EngineApi;
use crate::types_files::TypesFile;
use crate::{stepped, wait_until, PATIENCE};

const WORKER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../examples/python-worker/worker.py"
);

/// A worker process, killed (SIGKILL) when dropped unless it stopped before.
struct ExampleWorker(Child);

impl ExampleWorker {
    fn start(engine: &TestEngine) -> Self {
        let mut child = Command::new("python3")
            .arg(WORKER)
            .args(["--type", "resize-image", "--lease-s", "0.5", "--concurrency", "3"])
            .env("DTP_URL", engine.base_url())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 runs the example worker");
        let mut output = BufReader::new(child.stdout.take().unwrap());
        let mut first_line = String::new();
        output.read_line(&mut first_line).unwrap();
        assert!(first_line.contains("leasing resize-image"), "{first_line:?}");
        // Keep reading what it prints, so that its prints never meet a closed pipe.
        std::thread::spawn(move || for _ in output.lines() {});
        Self(child)
    }

    /// SIGTERM, then the exit code.
    fn terminate(mut self) -> Option<i32> {
        let pid = self.0.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        self.0.wait().unwrap().code()
    }
}

impl Drop for ExampleWorker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_worker_runs_fails_and_is_rescued_after_a_kill() {
    let types = TypesFile::write(
        "[types.resize-image]\nkind = \"external\"\nlease_ms = 500\nmax_attempts = 2\nbackoff_base_ms = 10\n",
    );
    let dtp = TestEngine::spawn_with(|config| {
        stepped(config);
        config.task_types_file = Some(types.path());
    })
    .await;
    let api = EngineApi::new(&dtp);
    let worker = ExampleWorker::start(&dtp);
    let ok: Vec<i64> = [
        api.create_task(&json!({"type": "resize-image", "payload": {"image": "a.png"}}))
            .await
            .id,
        api.create_task(&json!({"type": "resize-image", "payload": {"image": "b.png"}}))
            .await
            .id,
    ]
    .to_vec();
    let failing = api
        .create_task(&json!({"type": "resize-image", "payload": {"fail": "no such image"}}))
        .await
        .id;
    for id in &ok {
        let done = api
            .wait_for(*id, "finished", PATIENCE, |t| t.status.is_terminal())
            .await;
        assert_eq!(done.status, TaskStatus::Succeeded, "{done:?}");
        assert_eq!(done.result.as_ref().unwrap()["handledBy"], "python");
    }
    let done = api
        .wait_for(failing, "finished", PATIENCE, |t| t.status.is_terminal())
        .await;
    assert_eq!(
        (done.status, done.retry_state, done.attempt_count),
        (TaskStatus::Failed, RetryState::Exhausted, 2)
    );
    assert_eq!(done.last_error.as_deref(), Some("asked to fail: no such image"));
    assert_eq!(worker.terminate(), Some(0), "SIGTERM stops the worker cleanly");

    // A worker killed mid-attempt: the lease runs out, the rescuer makes the task due again,
    // and the next worker finishes it as attempt 2.
    let crashing = ExampleWorker::start(&dtp);
    let hung = api
        .create_task(&json!({"type": "resize-image", "payload": {"hangFirstAttempt": true}}))
        .await
        .id;
    api.wait_for_status(hung, TaskStatus::Running, PATIENCE).await;
    drop(crashing);
    let rescuer = dtp.rescuer();
    let deadline = std::time::Instant::now() + PATIENCE;
    while rescuer.rescue_expired_leases().await.unwrap() == 0 {
        assert!(std::time::Instant::now() < deadline, "the lease never expired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _successor = ExampleWorker::start(&dtp);
    let done = api
        .wait_for(hung, "finished", PATIENCE, |t| t.status.is_terminal())
        .await;
    assert_eq!((done.status, done.attempt_count), (TaskStatus::Succeeded, 2));
    let attempts = api.attempts(hung).await;
    assert_eq!(attempts[0].outcome.as_deref(), Some("LOST"));
    wait_until("both attempts are recorded", PATIENCE, || attempts.len() == 2).await;
}
