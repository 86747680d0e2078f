//! `demo-slow`: sleeps for `payload.sleepMs` (default 2 s), stopping early when canceled.

use std::time::Duration;

use super::{HandlerFuture, TaskContext, TaskError, TaskHandler};

pub const DEFAULT_SLEEP: Duration = Duration::from_secs(2);

pub struct DemoSlow;

impl TaskHandler for DemoSlow {
    fn run(&self, ctx: TaskContext) -> HandlerFuture {
        let sleep = ctx
            .demo_setting("sleepMs")
            .and_then(serde_json::Value::as_u64)
            .map_or(DEFAULT_SLEEP, Duration::from_millis);
        Box::pin(async move {
            tokio::select! {
                () = tokio::time::sleep(sleep) => Ok(None),
                () = ctx.cancel.cancelled() => Err(TaskError::retry("canceled while sleeping")),
            }
        })
    }
}
