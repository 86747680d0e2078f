//! `demo`: succeeds at once. Useful as a no-op in tests and benchmarks.

use super::{HandlerFuture, TaskContext, TaskHandler};

pub struct Demo;

impl TaskHandler for Demo {
    fn run(&self, _ctx: TaskContext) -> HandlerFuture {
        Box::pin(async { Ok(None) })
    }
}
