//! `demo-fail`: fails its first `payload.failTimes` attempts, then succeeds; without
//! `failTimes` it fails every attempt. Exercises retries and exhaustion.

use super::{HandlerFuture, TaskContext, TaskError, TaskHandler};

pub struct DemoFail;

impl TaskHandler for DemoFail {
    fn run(&self, ctx: TaskContext) -> HandlerFuture {
        let fail_times = ctx.demo_setting("failTimes").and_then(serde_json::Value::as_i64);
        let attempt = i64::from(ctx.attempt);
        Box::pin(async move {
            match fail_times {
                Some(n) if attempt > n => Ok(None),
                Some(n) => Err(TaskError::retry(format!(
                    "demo-fail: attempt {attempt} of {n} planned failures"
                ))),
                None => Err(TaskError::retry(format!(
                    "demo-fail: attempt {attempt} fails by design"
                ))),
            }
        })
    }
}
