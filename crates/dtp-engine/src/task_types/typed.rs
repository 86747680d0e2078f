//! Typed handlers for engines built on this crate: a `Task` names its type, declares its
//! payload's shape and runs one attempt. A submission whose payload does not deserialize is
//! refused (422, serde's message); one that reaches a run anyway (submitted before the shape
//! changed) fails as `NOT_RETRYABLE`.

use std::future::Future;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Deserialize as _;

use super::{HandlerFuture, TaskContext, TaskError, TaskHandler, TaskOutput};
use crate::domain::TypeOptions;

/// A task type implemented in Rust.
///
/// ```
/// use dtp_engine::task_types::{Task, TaskContext, TaskError, TaskOutput};
///
/// #[derive(serde::Deserialize)]
/// struct Invoice { customer: String, cents: u64 }
///
/// struct SendInvoice;
///
/// impl Task for SendInvoice {
///     const TYPE: &'static str = "send-invoice";
///     type Payload = Invoice;
///
///     async fn run(&self, ctx: TaskContext, invoice: Invoice) -> Result<TaskOutput, TaskError> {
///         if invoice.cents == 0 {
///             return Err(TaskError::not_retryable("nothing to invoice"));
///         }
///         let _ = (ctx.task_id, ctx.attempt, ctx.cancel);
///         Ok(Some(serde_json::json!({"sentTo": invoice.customer})))
///     }
/// }
/// ```
pub trait Task: Send + Sync + 'static {
    /// The `type` name clients submit (1–100 characters of `A-Za-z0-9._-`).
    const TYPE: &'static str;
    /// What the task's payload must deserialize into.
    type Payload: DeserializeOwned + Send + 'static;

    /// The type's settings; the engine's defaults unless overridden.
    fn options(&self) -> TypeOptions {
        TypeOptions::default()
    }

    /// Runs one attempt. `Ok(Some(value))` keeps `value` as the task's `result` (at most
    /// 64 KiB of JSON); an error says whether to retry. Watch `ctx.cancel` in long work.
    fn run(
        &self,
        ctx: TaskContext,
        payload: Self::Payload,
    ) -> impl Future<Output = Result<TaskOutput, TaskError>> + Send;
}

/// A `Task` seen as an untyped handler.
pub(super) struct Typed<T: Task>(pub(super) Arc<T>);

impl<T: Task> TaskHandler for Typed<T> {
    fn run(&self, ctx: TaskContext) -> HandlerFuture {
        let task = Arc::clone(&self.0);
        Box::pin(async move {
            let payload = T::Payload::deserialize(&ctx.payload).map_err(|e| {
                TaskError::not_retryable(format!("the payload is not what {} takes: {e}", T::TYPE))
            })?;
            task.run(ctx, payload).await
        })
    }

    fn check_payload(&self, payload: &serde_json::Value) -> Result<(), String> {
        T::Payload::deserialize(payload)
            .map(drop)
            .map_err(|e| e.to_string())
    }
}
