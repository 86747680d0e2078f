//! Task types: what a task of each `type` does when it runs. A type is a Rust handler
//! (`Task`, registered on the engine's builder), an HTTP target declared in the types file
//! (`http_target`), or an external type that workers lease; `TaskTypeRegistry` holds them all.

mod demo;
mod demo_fail;
mod demo_slow;
pub(crate) mod http_target;
mod registry;
mod typed;
pub(crate) mod types_file;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

pub use registry::{RegisteredType, RegistryError, TaskTypeRegistry, TypeKind};
pub use typed::Task;

/// What a handler gets to work with for one attempt.
#[derive(Debug, Clone)]
pub struct TaskContext {
    pub task_id: i64,
    pub task_type: String,
    /// 1-based number of this attempt.
    pub attempt: i32,
    pub max_attempts: i32,
    pub payload: serde_json::Value,
    pub created_at: DateTime<Utc>,
    /// When this attempt fell due.
    pub scheduled_for: DateTime<Utc>,
    /// Fired when the attempt must stop: the task was canceled, timed out or fenced off,
    /// or the engine is shutting down. Long-running handlers should watch it.
    pub cancel: CancellationToken,
}

/// A setting of the demo types: `payload.<key>`, or `payload.payload.<key>` for tasks
/// submitted through TaskPilot, which wraps the web task's payload in an envelope.
fn demo_setting<'a>(payload: &'a serde_json::Value, key: &str) -> Option<&'a serde_json::Value> {
    payload
        .get(key)
        .or_else(|| payload.get("payload").and_then(|inner| inner.get(key)))
}

/// A demo setting as a whole number in `range`, `None` when absent; anything else (a
/// negative, a fraction, a string) is refused rather than silently replaced by the default.
fn demo_number(
    payload: &serde_json::Value,
    key: &str,
    range: std::ops::RangeInclusive<u64>,
) -> Result<Option<u64>, String> {
    match demo_setting(payload, key) {
        None => Ok(None),
        Some(value) => value
            .as_u64()
            .filter(|n| range.contains(n))
            .map(Some)
            .ok_or_else(|| {
                format!(
                    "{key} must be a whole number from {} to {}, got {value}",
                    range.start(),
                    range.end()
                )
            }),
    }
}

/// Whether, and when, a failed attempt is tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// After the type's backoff (the last attempt fails the task as `EXHAUSTED`).
    Backoff,
    /// After this delay instead of the backoff, capped at the type's `backoff_max_ms`.
    After(Duration),
    /// Never: the task fails at once as `NOT_RETRYABLE`.
    Never,
}

/// Why an attempt failed, as recorded in `lastError`, and whether to try again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TaskError {
    pub message: String,
    pub retry: Retry,
}

impl TaskError {
    /// A failure worth another attempt after the backoff.
    pub fn retry(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retry: Retry::Backoff,
        }
    }

    /// A failure worth another attempt after `delay`.
    pub fn retry_after(message: impl Into<String>, delay: Duration) -> Self {
        Self {
            message: message.into(),
            retry: Retry::After(delay),
        }
    }

    /// A failure no retry mends: the task fails now.
    pub fn not_retryable(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retry: Retry::Never,
        }
    }
}

/// What an attempt produced: the task's `result`, if any.
pub type TaskOutput = Option<serde_json::Value>;

pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<TaskOutput, TaskError>> + Send>>;

/// The code behind one task type, untyped: the registry's view of every handler. Write
/// handlers as `Task`s; this is what they, the HTTP targets and the demo types become.
pub trait TaskHandler: Send + Sync + 'static {
    /// Runs one attempt.
    fn run(&self, ctx: TaskContext) -> HandlerFuture;

    /// Why `payload` is not what this type takes, checked at submission so that a task
    /// that could never run is refused (422) rather than accepted; anything by default.
    fn check_payload(&self, _payload: &serde_json::Value) -> Result<(), String> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{EngineTypeDefaults, RetryPolicy};
    use serde_json::json;

    fn context(attempt: i32, payload: serde_json::Value) -> TaskContext {
        TaskContext {
            task_id: 1,
            task_type: "demo".into(),
            attempt,
            max_attempts: 3,
            payload,
            created_at: Utc::now(),
            scheduled_for: Utc::now(),
            cancel: CancellationToken::new(),
        }
    }

    fn demo_types() -> TaskTypeRegistry {
        TaskTypeRegistry::with_demo_types(EngineTypeDefaults {
            max_attempts: 3,
            timeout_ms: 300_000,
            retry: RetryPolicy::default(),
            lease: Duration::from_secs(30),
        })
    }

    fn handler(name: &str) -> std::sync::Arc<dyn TaskHandler> {
        demo_types().get(name).and_then(|t| t.handler.clone()).unwrap()
    }

    #[tokio::test]
    async fn demo_fail_fails_the_first_n_attempts() {
        let handler = handler("demo-fail");
        let payload = json!({"failTimes": 2});
        assert!(handler.run(context(1, payload.clone())).await.is_err());
        assert!(handler.run(context(2, payload.clone())).await.is_err());
        assert_eq!(handler.run(context(3, payload)).await, Ok(None));
        assert!(handler.run(context(50, json!(null))).await.is_err());
    }

    #[tokio::test]
    async fn demo_settings_are_read_through_the_taskpilot_envelope() {
        let handler = handler("demo-fail");
        let wrapped = json!({"webTaskId": 3, "type": "x", "payload": {"failTimes": 1}});
        assert!(handler.run(context(1, wrapped.clone())).await.is_err());
        assert!(handler.run(context(2, wrapped)).await.is_ok());
    }

    #[tokio::test]
    async fn demo_slow_stops_when_canceled() {
        let handler = handler("demo-slow");
        let ctx = context(1, json!({"sleepMs": 60_000}));
        let cancel = ctx.cancel.clone();
        let run = tokio::spawn(handler.run(ctx));
        cancel.cancel();
        let result = tokio::time::timeout(Duration::from_secs(5), run)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(result, Err(TaskError::retry("canceled while sleeping")));
    }

    #[tokio::test]
    async fn demo_slow_sleeps_for_the_requested_time() {
        assert!(handler("demo-slow")
            .run(context(1, json!({"sleepMs": 5})))
            .await
            .is_ok());
    }

    #[test]
    fn task_errors_say_whether_to_retry() {
        assert_eq!(TaskError::retry("a").retry, Retry::Backoff);
        assert_eq!(
            TaskError::retry_after("a", Duration::from_secs(3)).retry,
            Retry::After(Duration::from_secs(3))
        );
        assert_eq!(TaskError::not_retryable("a").retry, Retry::Never);
        assert_eq!(TaskError::not_retryable("bad input").to_string(), "bad input");
    }
}
