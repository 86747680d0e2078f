//! Test task types held at a gate: each attempt tells the test it started and then waits
//! until the test lets it finish (or until it is told to stop), so that tests of cancel,
//! shutdown, timeouts and concurrency wait for events, not for sleeps.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dtp_engine::domain::TypeOptions;
use dtp_engine::task_types::{Task, TaskContext, TaskError, TaskOutput};
use serde_json::json;
use tokio::sync::{Notify, Semaphore};

use crate::PATIENCE;

/// What the attempts of one gated type share with the test.
pub struct GateState {
    open: Semaphore,
    started: AtomicUsize,
    running: AtomicUsize,
    max_running: AtomicUsize,
    stopped: AtomicUsize,
    changed: Notify,
}

impl Default for GateState {
    fn default() -> Self {
        Self {
            open: Semaphore::new(0),
            started: AtomicUsize::new(0),
            running: AtomicUsize::new(0),
            max_running: AtomicUsize::new(0),
            stopped: AtomicUsize::new(0),
            changed: Notify::new(),
        }
    }
}

/// The test's handle on a gate. Cheap to clone: the engines' handlers hold clones.
#[derive(Clone, Default)]
pub struct Gate(Arc<GateState>);

impl Gate {
    /// Lets `n` waiting (or future) attempts finish, each successfully.
    pub fn release(&self, n: usize) {
        self.0.open.add_permits(n);
    }

    /// Attempts started so far.
    pub fn started(&self) -> usize {
        self.0.started.load(Ordering::SeqCst)
    }

    /// Attempts running right now.
    pub fn running(&self) -> usize {
        self.0.running.load(Ordering::SeqCst)
    }

    /// The most attempts that ever ran at once.
    pub fn max_running(&self) -> usize {
        self.0.max_running.load(Ordering::SeqCst)
    }

    /// Attempts that were told to stop (canceled, timed out, released at shutdown).
    pub fn stopped(&self) -> usize {
        self.0.stopped.load(Ordering::SeqCst)
    }

    /// Waits until `done` holds of the gate, failing the test after `PATIENCE`.
    pub async fn wait_until(&self, what: &str, done: impl Fn(&Gate) -> bool) {
        let waited = tokio::time::timeout(PATIENCE, async {
            loop {
                let changed = self.0.changed.notified();
                if done(self) {
                    return;
                }
                changed.await;
            }
        })
        .await;
        assert!(
            waited.is_ok(),
            "gave up waiting until {what}: started {}, running {}, stopped {}",
            self.started(),
            self.running(),
            self.stopped()
        );
    }

    async fn attempt(&self, ctx: &TaskContext) -> Result<TaskOutput, TaskError> {
        let state = &self.0;
        let _running = Running::start(state);
        tokio::select! {
            permit = state.open.acquire() => {
                permit.map(|p| p.forget()).map_err(|_| TaskError::retry("gate closed"))?;
                Ok(Some(json!({"releasedAttempt": ctx.attempt})))
            }
            () = ctx.cancel.cancelled() => {
                state.stopped.fetch_add(1, Ordering::SeqCst);
                Err(TaskError::retry("stopped at the gate"))
            }
        }
    }
}

/// Counts an attempt as running until it ends, also when the engine aborts it (a timeout).
struct Running<'a>(&'a GateState);

impl<'a> Running<'a> {
    fn start(state: &'a GateState) -> Self {
        let running = state.running.fetch_add(1, Ordering::SeqCst) + 1;
        state.max_running.fetch_max(running, Ordering::SeqCst);
        state.started.fetch_add(1, Ordering::SeqCst);
        state.changed.notify_waiters();
        Self(state)
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
        self.0.changed.notify_waiters();
    }
}

/// `gated`: no limit.
pub struct Gated(pub Gate);

impl Task for Gated {
    const TYPE: &'static str = "gated";
    type Payload = serde_json::Value;

    async fn run(&self, ctx: TaskContext, _: serde_json::Value) -> Result<TaskOutput, TaskError> {
        self.0.attempt(&ctx).await
    }
}

/// Most `gated-limited` attempts at once across every engine.
pub const GATED_LIMIT: u32 = 3;

/// `gated-limited`: at most `GATED_LIMIT` attempts at once.
pub struct GatedLimited(pub Gate);

impl Task for GatedLimited {
    const TYPE: &'static str = "gated-limited";
    type Payload = serde_json::Value;

    fn options(&self) -> TypeOptions {
        TypeOptions {
            concurrency: Some(GATED_LIMIT),
            ..TypeOptions::default()
        }
    }

    async fn run(&self, ctx: TaskContext, _: serde_json::Value) -> Result<TaskOutput, TaskError> {
        self.0.attempt(&ctx).await
    }
}

/// A lease long enough that a heartbeat never comes within a test's patience: what stops
/// an attempt in time was told some other way.
pub const NO_HEARTBEAT_IN_TIME: Duration = Duration::from_secs(600);
