//! Task types: what a task of each `type` does when it runs. A new type is one file
//! implementing `TaskHandler`, registered in `HandlerRegistry::with_builtin_types`.

mod demo;
mod demo_fail;
mod demo_slow;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::domain::new_task::TaskTypes;

/// Per-attempt time limit of a type that does not choose its own.
pub const DEFAULT_TASK_TIMEOUT: Duration = Duration::from_secs(300);

/// What a handler gets to work with for one attempt.
#[derive(Debug, Clone)]
pub struct TaskContext {
    pub task_id: i64,
    /// 1-based number of this attempt.
    pub attempt: i32,
    pub payload: serde_json::Value,
    /// Fired when the attempt must stop: the task was canceled, timed out or fenced off,
    /// or the engine is shutting down. Long-running handlers should watch it.
    pub cancel: CancellationToken,
}

impl TaskContext {
    /// A setting of the demo types: `payload.<key>`, or `payload.payload.<key>` for tasks
    /// submitted through TaskPilot, which wraps the web task's payload in an envelope.
    pub fn demo_setting(&self, key: &str) -> Option<&serde_json::Value> {
        self.payload
            .get(key)
            .or_else(|| self.payload.get("payload").and_then(|inner| inner.get(key)))
    }
}

/// Why an attempt failed, as recorded in `lastError`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct HandlerError(pub String);

pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<(), HandlerError>> + Send>>;

/// The code behind one task type.
pub trait TaskHandler: Send + Sync + 'static {
    /// The `type` name clients submit.
    fn task_type(&self) -> &'static str;

    /// How long one attempt may run unless the task sets `timeoutMs`.
    fn default_timeout(&self) -> Duration {
        DEFAULT_TASK_TIMEOUT
    }

    /// Runs one attempt.
    fn run(&self, ctx: TaskContext) -> HandlerFuture;
}

/// The task types this engine can run, by name.
#[derive(Clone, Default)]
pub struct HandlerRegistry {
    handlers: BTreeMap<&'static str, Arc<dyn TaskHandler>>,
}

impl HandlerRegistry {
    /// The built-in demo types: `demo`, `demo-slow`, `demo-fail`.
    pub fn with_builtin_types() -> Self {
        let mut registry = Self::default();
        registry.register(demo::Demo);
        registry.register(demo_slow::DemoSlow);
        registry.register(demo_fail::DemoFail);
        registry
    }

    pub fn register(&mut self, handler: impl TaskHandler) {
        self.handlers.insert(handler.task_type(), Arc::new(handler));
    }

    pub fn get(&self, task_type: &str) -> Option<Arc<dyn TaskHandler>> {
        self.handlers.get(task_type).cloned()
    }
}

impl TaskTypes for HandlerRegistry {
    fn default_timeout_ms(&self, task_type: &str) -> Option<i32> {
        self.handlers
            .get(task_type)
            .map(|h| i32::try_from(h.default_timeout().as_millis()).unwrap_or(i32::MAX))
    }

    fn names(&self) -> Vec<String> {
        self.handlers.keys().map(|k| (*k).to_owned()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn context(attempt: i32, payload: serde_json::Value) -> TaskContext {
        TaskContext {
            task_id: 1,
            attempt,
            payload,
            cancel: CancellationToken::new(),
        }
    }

    #[test]
    fn knows_the_builtin_types_in_order() {
        let registry = HandlerRegistry::with_builtin_types();
        assert_eq!(registry.names(), vec!["demo", "demo-fail", "demo-slow"]);
        assert!(registry.default_timeout_ms("demo").is_some());
        assert!(registry.default_timeout_ms("nope").is_none());
    }

    #[tokio::test]
    async fn demo_fail_fails_the_first_n_attempts() {
        let handler = HandlerRegistry::with_builtin_types().get("demo-fail").unwrap();
        let payload = json!({"failTimes": 2});
        assert!(handler.run(context(1, payload.clone())).await.is_err());
        assert!(handler.run(context(2, payload.clone())).await.is_err());
        assert!(handler.run(context(3, payload)).await.is_ok());
        assert!(handler.run(context(50, json!(null))).await.is_err());
    }

    #[tokio::test]
    async fn demo_settings_are_read_through_the_taskpilot_envelope() {
        let handler = HandlerRegistry::with_builtin_types().get("demo-fail").unwrap();
        let wrapped = json!({"webTaskId": 3, "type": "x", "payload": {"failTimes": 1}});
        assert!(handler.run(context(1, wrapped.clone())).await.is_err());
        assert!(handler.run(context(2, wrapped)).await.is_ok());
    }

    #[tokio::test]
    async fn demo_slow_stops_when_canceled() {
        let handler = HandlerRegistry::with_builtin_types().get("demo-slow").unwrap();
        let ctx = context(1, json!({"sleepMs": 60_000}));
        let cancel = ctx.cancel.clone();
        let run = tokio::spawn(handler.run(ctx));
        cancel.cancel();
        let result = tokio::time::timeout(Duration::from_secs(5), run)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(result, Err(HandlerError("canceled while sleeping".into())));
    }

    #[tokio::test]
    async fn demo_slow_sleeps_for_the_requested_time() {
        let handler = HandlerRegistry::with_builtin_types().get("demo-slow").unwrap();
        assert!(handler.run(context(1, json!({"sleepMs": 5}))).await.is_ok());
    }
}
