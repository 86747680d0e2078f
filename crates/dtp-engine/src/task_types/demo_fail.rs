//! `demo-fail`: fails its first `payload.failTimes` attempts, then succeeds; without
//! `failTimes` it fails every attempt. Exercises retries and exhaustion.

use super::{demo_number, HandlerFuture, TaskContext, TaskError, TaskHandler};

/// As many failures as a task may have attempts.
const MAX_FAIL_TIMES: u64 = 100;

pub struct DemoFail;

impl TaskHandler for DemoFail {
    fn run(&self, ctx: TaskContext) -> HandlerFuture {
        let fail_times = demo_number(&ctx.payload, "failTimes", 0..=MAX_FAIL_TIMES)
            .ok()
            .flatten();
        let attempt = u64::try_from(ctx.attempt).unwrap_or(0);
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

    fn check_payload(&self, payload: &serde_json::Value) -> Result<(), String> {
        demo_number(payload, "failTimes", 0..=MAX_FAIL_TIMES).map(drop)
    }
}
