//! The engine's integration tests, compiled as one binary. Each test spawns a real engine
//! (`TestEngine`) on its own database and drives it over HTTP as a client would; waits
//! poll for an outcome under a deadline, or step the worker when the loop is off.
#![allow(clippy::unwrap_used)] // A failed unwrap is a failed test, also in shared test code.

mod access;
mod api;
mod bad_input;
mod batch;
mod connections;
mod events;
mod example_receiver;
mod example_worker;
mod gates;
mod http_targets;
mod idempotency;
mod integrity;
mod leases;
mod listing;
mod operations;
mod outage;
mod plans;
mod receiver;
mod rescuer;
mod retries;
mod shutdown;
mod sql;
mod task_types;
mod tasks_api;
mod tls;
mod types_files;
mod worker;

use std::time::{Duration, Instant};

use dtp_engine::config::EngineConfig;

/// How long a test waits for an outcome that should come quickly.
const PATIENCE: Duration = Duration::from_secs(15);
/// Pause between two looks at something a test waits for.
const POLL_EVERY: Duration = Duration::from_millis(10);

/// Config tweak for stepped tests: no background worker or rescuer; the test drives them.
fn stepped(config: &mut EngineConfig) {
    config.worker_enabled = false;
}

/// Polls `done` until it holds, failing the test after `timeout`.
async fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "gave up after {timeout:?} waiting until {what}"
        );
        tokio::time::sleep(POLL_EVERY).await;
    }
}
