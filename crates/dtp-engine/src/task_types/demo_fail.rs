//! `demo-fail`: fails its first `payload.failTimes` attempts, then succeeds; without
//! `failTimes` it fails every attempt. Exercises retries and exhaustion.

use super::{HandlerError, HandlerFuture, TaskContext, TaskHandler};

pub struct DemoFail;

impl TaskHandler for DemoFail {
    fn task_type(&self) -> &'static str {
        "demo-fail"
    }

    fn run(&self, ctx: TaskContext) -> HandlerFuture {
        let fail_times = ctx.demo_setting("failTimes").and_then(serde_json::Value::as_i64);
        let attempt = i64::from(ctx.attempt);
        Box::pin(async move {
            match fail_times {
                Some(n) if attempt > n => Ok(()),
                Some(n) => Err(HandlerError(format!(
                    "demo-fail: attempt {attempt} of {n} planned failures"
                ))),
                None => Err(HandlerError(format!(
                    "demo-fail: attempt {attempt} fails by design"
                ))),
            }
        })
    }
}
