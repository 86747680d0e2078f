//! Batched completion: finished attempts hand their end to the completer, which writes
//! every end that is waiting in one lease-guarded statement. A busy worker pays one
//! round trip per batch instead of one per attempt; an idle one waits for nothing.

use service_runtime::PgPool;
use tokio::sync::{mpsc, oneshot};

use crate::store::tasks::{self as task_store, AttemptEnd, LeaseGuard};
use crate::store::{self, StoreError};

/// Most attempt ends written in one statement.
pub const MAX_COMPLETION_BATCH: usize = 1_000;

/// One attempt's end waiting to be written, and who waits for the verdict.
struct PendingCompletion {
    end: AttemptEnd,
    written: oneshot::Sender<Result<bool, StoreError>>,
}

/// The handle attempts report through. Cheap to clone; the writer stops with the last clone.
#[derive(Clone)]
pub struct AttemptCompleter {
    queue: mpsc::UnboundedSender<PendingCompletion>,
}

impl AttemptCompleter {
    /// Starts the writer on the current runtime.
    pub fn start(pool: PgPool) -> Self {
        let (queue, waiting) = mpsc::unbounded_channel();
        tokio::spawn(write_batches(pool, waiting));
        Self { queue }
    }

    /// Writes `end` with the next batch: `Ok(true)` when the attempt still held its task,
    /// `Ok(false)` when it was fenced off (canceled, rescued, superseded).
    pub async fn complete(&self, end: AttemptEnd) -> Result<bool, StoreError> {
        let (written, verdict) = oneshot::channel();
        let stopped = || StoreError::Unavailable("the attempt completer has stopped".into());
        self.queue
            .send(PendingCompletion { end, written })
            .map_err(|_| stopped())?;
        verdict.await.unwrap_or_else(|_| Err(stopped()))
    }
}

/// Takes whatever is waiting (at least one end, at most a batch) and writes it at once:
/// batches grow by themselves while a write is under way, with no timer adding latency.
async fn write_batches(pool: PgPool, mut waiting: mpsc::UnboundedReceiver<PendingCompletion>) {
    let mut batch = Vec::with_capacity(MAX_COMPLETION_BATCH);
    while waiting.recv_many(&mut batch, MAX_COMPLETION_BATCH).await > 0 {
        let ends: Vec<AttemptEnd> = batch.iter().map(|p| p.end.clone()).collect();
        let written = store::run(&pool, move |conn| {
            task_store::finish_attempts(conn, &ends, LeaseGuard::Held)
        })
        .await;
        match written {
            Ok(held) => {
                for pending in batch.drain(..) {
                    let still_held = held.contains(&pending.end.lease_token);
                    let _ = pending.written.send(Ok(still_held));
                }
            }
            Err(StoreError::Unavailable(reason)) => {
                for pending in batch.drain(..) {
                    let _ = pending.written.send(Err(StoreError::Unavailable(reason.clone())));
                }
            }
            // Not expected of a guarded update; write one by one so that one bad end cannot
            // hold back the others.
            Err(e) => {
                tracing::warn!(error = %e, ends = batch.len(), "batched completion failed; writing one by one");
                for pending in batch.drain(..) {
                    let end = pending.end;
                    let one = store::run(&pool, move |conn| {
                        task_store::finish_attempt(conn, &end, LeaseGuard::Held)
                    })
                    .await;
                    let _ = pending.written.send(one);
                }
            }
        }
    }
}
