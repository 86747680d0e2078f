//! The example receiver of the README (`examples/http-receiver/receiver.py`) against a real
//! engine: a request signed with the right secret is accepted and its answer kept as the
//! task's result; one signed with another secret is refused (401), which fails the task
//! without retries. The receiver checks signatures on its own, in Python.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use dtp_contract::{RetryState, TaskStatus};
use dtp_engine::testing::TestEngine;
use serde_json::json;

use crate::api::EngineApi;
use crate::types_files::TypesFile;
use crate::PATIENCE;

const RECEIVER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../examples/http-receiver/receiver.py"
);

/// The receiver process, killed when dropped.
struct ExampleReceiver {
    child: Child,
    base_url: String,
}

impl ExampleReceiver {
    fn start(secret: &str) -> Self {
        let mut child = Command::new("python3")
            .arg(RECEIVER)
            .args(["--port", "0", "--secret-env", "RECEIVER_SECRET"])
            .env("RECEIVER_SECRET", secret)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 runs the example receiver");
        let mut first_line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first_line)
            .unwrap();
        let base_url = first_line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("receiver said {first_line:?}"))
            .to_owned();
        Self { child, base_url }
    }
}

impl Drop for ExampleReceiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_receiver_accepts_signed_deliveries_and_refuses_others() {
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let receiver = ExampleReceiver::start(secret);
    std::env::set_var("DTP_IT_RIGHT_SECRET", secret);
    std::env::set_var("DTP_IT_WRONG_SECRET", "not-the-secret");
    let url = format!("{}/hooks/send-email", receiver.base_url);
    let file = TypesFile::write(&format!(
        "[types.send-email]\nkind = \"http\"\nurl = \"{url}\"\nsigning_secret_env = \"DTP_IT_RIGHT_SECRET\"\n\
         [types.forged]\nkind = \"http\"\nurl = \"{url}\"\nsigning_secret_env = \"DTP_IT_WRONG_SECRET\"\n"
    ));
    let dtp = TestEngine::spawn_with(|config| config.task_types_file = Some(file.path())).await;
    let api = EngineApi::new(&dtp);
    let signed = api
        .create_task(&json!({"type": "send-email", "payload": {"to": "a@b"}}))
        .await;
    let forged = api
        .create_task(&json!({"type": "forged", "maxAttempts": 5}))
        .await;

    let done = api
        .wait_for(signed.id, "finished", PATIENCE, |t| t.status.is_terminal())
        .await;
    assert_eq!(done.status, TaskStatus::Succeeded, "{done:?}");
    assert_eq!(
        done.result,
        Some(json!({"delivered": true, "taskId": signed.id, "attempt": 1}))
    );
    let done = api
        .wait_for(forged.id, "finished", PATIENCE, |t| t.status.is_terminal())
        .await;
    assert_eq!(
        (done.status, done.retry_state, done.attempt_count),
        (TaskStatus::Failed, RetryState::NotRetryable, 1)
    );
    let error = done.last_error.unwrap();
    assert!(error.starts_with(&format!("HTTP 401 from {url}")), "{error}");
}
