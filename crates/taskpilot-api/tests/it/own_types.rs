//! Task types of the engine's own, beside the demo types: `receipt` answers with a result
//! that the execution view passes through, and `held` runs until it is told to stop, so
//! that tests of running and canceled tasks wait for events rather than for a sleep.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use dtp_engine::task_types::{Task, TaskContext, TaskError, TaskOutput};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::Notify;

use crate::PATIENCE;

/// The payload TaskPilot gives every scheduler task it binds.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    web_task_id: i64,
    #[serde(rename = "type")]
    web_type: String,
}

/// `receipt`: succeeds with a result naming the web task.
pub struct Receipt;

impl Task for Receipt {
    const TYPE: &'static str = "receipt";
    type Payload = Envelope;

    async fn run(&self, _: TaskContext, envelope: Envelope) -> Result<TaskOutput, TaskError> {
        Ok(Some(
            json!({"receiptFor": envelope.web_task_id, "webType": envelope.web_type}),
        ))
    }
}

/// What `held` attempts tell the test.
#[derive(Default)]
pub struct HeldState {
    started: AtomicUsize,
    stopped: AtomicUsize,
    changed: Notify,
}

impl HeldState {
    pub fn started(&self) -> usize {
        self.started.load(Ordering::SeqCst)
    }

    pub fn stopped(&self) -> usize {
        self.stopped.load(Ordering::SeqCst)
    }

    /// Waits until `done` holds, failing the test after `PATIENCE`.
    pub async fn wait_until(&self, what: &str, done: impl Fn(&HeldState) -> bool) {
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

/// `held`: runs until its attempt is told to stop.
pub struct Held(pub Arc<HeldState>);

impl Task for Held {
    const TYPE: &'static str = "held";
    type Payload = serde_json::Value;

    async fn run(&self, ctx: TaskContext, _: serde_json::Value) -> Result<TaskOutput, TaskError> {
        self.0.started.fetch_add(1, Ordering::SeqCst);
        self.0.changed.notify_waiters();
        ctx.cancel.cancelled().await;
        self.0.stopped.fetch_add(1, Ordering::SeqCst);
        self.0.changed.notify_waiters();
        Err(TaskError::retry("stopped"))
    }
}
