//! Canceling a task: read its state, let the state machine decide, write the cancel guarded
//! by the state read, and decide again when the task moved on in between (an attempt ended,
//! a claim took it). A running attempt is told to stop once the cancel has committed.

use crate::domain::{transition, IllegalTransition, TaskEvent};
use crate::store::tasks::Tasks;
use crate::store::StoreError;
use crate::worker::Worker;

/// How often a cancel re-reads a task whose state changed under it before giving up.
const CANCEL_RACE_RETRIES: usize = 5;

/// Why a task was not canceled.
#[derive(Debug, thiserror::Error)]
pub enum CancelError {
    #[error("task {0} not found")]
    NotFound(i64),
    /// The task has finished otherwise (SUCCEEDED or FAILED).
    #[error(transparent)]
    NotCancelable(IllegalTransition),
    /// The task changed state under every one of the cancel's tries.
    #[error("task {0} kept changing state; retry the cancel")]
    Busy(i64),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Cancels task `id`; `Ok` once it is CANCELED, also when it already was.
pub async fn cancel_task(tasks: &Tasks, worker: &Worker, id: i64) -> Result<(), CancelError> {
    for _ in 0..CANCEL_RACE_RETRIES {
        let row = tasks.find(id).await?.ok_or(CancelError::NotFound(id))?;
        let current = row.state()?;
        let next = transition(current, TaskEvent::Cancel).map_err(CancelError::NotCancelable)?;
        if next == current {
            return Ok(());
        }
        if tasks.cancel_if_in(id, current.status, next).await? {
            worker.on_task_canceled(id, &row.task_type);
            tracing::info!(task.id = id, from = %current.status, "task canceled");
            return Ok(());
        }
        // The task moved on between our read and our write: decide again from its new state.
    }
    Err(CancelError::Busy(id))
}
