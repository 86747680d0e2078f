//! Batched completion: finished attempts hand their end to the completer, which writes
//! every end that is waiting in one lease-guarded statement (group commit). A busy worker
//! pays one round trip per batch instead of one per attempt.

use std::collections::HashSet;

use service_runtime::PgPool;

use crate::store::group_commit::{GroupCommit, GroupWrite};
use crate::store::tasks::{self as task_store, AttemptEnd, LeaseGuard};
use crate::store::{self, StoreError};

/// Most attempt ends written in one statement.
pub const MAX_COMPLETION_BATCH: usize = 1_000;

/// The handle attempts report through. Cheap to clone.
#[derive(Clone)]
pub struct AttemptCompleter {
    writer: GroupCommit<AttemptEnd, bool>,
}

impl AttemptCompleter {
    /// Starts the writer on the current runtime.
    pub fn start(pool: PgPool) -> Self {
        let writer = GroupCommit::start("attempt completer", MAX_COMPLETION_BATCH, move |ends| {
            write_ends(pool.clone(), ends)
        });
        Self { writer }
    }

    /// Writes `end` with the next batch: `Ok(true)` when the attempt still held its task,
    /// `Ok(false)` when it was fenced off (canceled, rescued, superseded).
    pub async fn complete(&self, end: AttemptEnd) -> Result<bool, StoreError> {
        self.writer.submit(end).await
    }
}

fn write_ends(pool: PgPool, ends: Vec<AttemptEnd>) -> GroupWrite<bool> {
    Box::pin(async move {
        let tokens: Vec<i64> = ends.iter().map(|e| e.lease_token).collect();
        let batch = ends.clone();
        let written = store::run(&pool, move |conn| {
            task_store::finish_attempts(conn, &batch, LeaseGuard::Held)
        })
        .await;
        match written {
            Ok(held) => {
                let held: HashSet<i64> = held.into_iter().collect();
                tokens.iter().map(|t| Ok(held.contains(t))).collect()
            }
            Err(StoreError::Unavailable(reason)) => tokens
                .iter()
                .map(|_| Err(StoreError::Unavailable(reason.clone())))
                .collect(),
            // Not expected of a guarded update; write one by one so that one bad end cannot
            // hold back the others.
            Err(e) => {
                tracing::warn!(error = %e, ends = ends.len(), "batched completion failed; writing one by one");
                let mut results = Vec::with_capacity(ends.len());
                for end in ends {
                    let one = store::run(&pool, move |conn| {
                        task_store::finish_attempt(conn, &end, LeaseGuard::Held)
                    })
                    .await;
                    results.push(one);
                }
                results
            }
        }
    })
}
