//! `send-invoice`: a task type written in Rust and run by an engine binary of one's own.
//! The payload is typed: a submission whose payload is not an `Invoice` is refused with a
//! 422 and serde's message.

use dtp_engine::task_types::{Task, TaskContext, TaskError, TaskOutput};
use serde::Deserialize;
use serde_json::json;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Invoice {
    pub customer: String,
    pub amount_cents: u64,
}

pub struct SendInvoice;

impl Task for SendInvoice {
    const TYPE: &'static str = "send-invoice";
    type Payload = Invoice;

    async fn run(&self, ctx: TaskContext, invoice: Invoice) -> Result<TaskOutput, TaskError> {
        if invoice.amount_cents == 0 {
            return Err(TaskError::not_retryable("an invoice of nothing is not sent"));
        }
        // Real work would go here, watching `ctx.cancel` if it takes long.
        Ok(Some(json!({
            "invoiceNumber": format!("INV-{}", ctx.task_id),
            "customer": invoice.customer,
            "attempt": ctx.attempt,
        })))
    }
}
