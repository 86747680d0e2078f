//! `demo-slow`: sleeps for `payload.sleepMs` (default 2 s), stopping early when canceled.

use std::time::Duration;

use super::{demo_number, HandlerFuture, TaskContext, TaskError, TaskHandler};

pub const DEFAULT_SLEEP: Duration = Duration::from_secs(2);
/// The longest sleep asked for: a day, the longest any attempt may be given.
const MAX_SLEEP_MS: u64 = 86_400_000;

pub struct DemoSlow;

impl TaskHandler for DemoSlow {
    fn run(&self, ctx: TaskContext) -> HandlerFuture {
        // Submission checked the setting; a task stored before that check sleeps the default.
        let sleep = demo_number(&ctx.payload, "sleepMs", 0..=MAX_SLEEP_MS)
            .ok()
            .flatten()
            .map_or(DEFAULT_SLEEP, Duration::from_millis);
        Box::pin(async move {
            tokio::select! {
                () = tokio::time::sleep(sleep) => Ok(None),
                () = ctx.cancel.cancelled() => Err(TaskError::retry("canceled while sleeping")),
            }
        })
    }

    fn check_payload(&self, payload: &serde_json::Value) -> Result<(), String> {
        demo_number(payload, "sleepMs", 0..=MAX_SLEEP_MS).map(drop)
    }
}
