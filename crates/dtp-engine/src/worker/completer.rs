//! Batched completion: finished attempts hand their end to the completer, which writes
//! every end that is waiting in one lease-guarded statement (group commit). A busy worker
//! pays one round trip per batch instead of one per attempt.

use std::collections::HashSet;

use diesel::{PgConnection, QueryResult};
use service_runtime::group_commit::GroupCommit;
use service_runtime::PgPool;

use crate::change_feed::FeedSignal;
use crate::store::tasks::{self as task_store, AttemptEnd, LeaseGuard};
use crate::store::StoreError;

/// Most attempt ends written in one statement.
pub const MAX_COMPLETION_BATCH: usize = 1_000;

/// The handle attempts report through. Cheap to clone.
#[derive(Clone)]
pub struct AttemptCompleter {
    writer: GroupCommit<AttemptEnd, bool>,
    feed: FeedSignal,
}

impl AttemptCompleter {
    /// Starts the writer of the engine's own attempts on the current runtime.
    pub fn start(pool: PgPool, feed: FeedSignal) -> Self {
        Self {
            feed,
            writer: GroupCommit::start_statements(
                "attempt completer",
                MAX_COMPLETION_BATCH,
                pool,
                finish_each,
            ),
        }
    }

    /// Starts the writer of the ends that workers outside the engine report, each guarded by
    /// its lease's secret and expiry (`LeaseGuard::Worker`).
    pub fn start_for_workers(pool: PgPool, feed: FeedSignal) -> Self {
        Self {
            feed,
            writer: GroupCommit::start_statements(
                "worker completer",
                MAX_COMPLETION_BATCH,
                pool,
                finish_each_for_workers,
            ),
        }
    }

    /// Writes `end` with the next batch: `Ok(true)` when the attempt still held its task,
    /// `Ok(false)` when it was fenced off (canceled, rescued, superseded).
    pub async fn complete(&self, end: AttemptEnd) -> Result<bool, StoreError> {
        let held = self.writer.submit(end).await?;
        if held {
            self.feed.events_written();
        }
        Ok(held)
    }
}

/// Ends every attempt of `ends` in one statement; answers, for each in order, whether it
/// still held its task.
fn finish_each(conn: &mut PgConnection, ends: &[AttemptEnd]) -> QueryResult<Vec<bool>> {
    finish_guarded(conn, ends, LeaseGuard::Held)
}

fn finish_each_for_workers(conn: &mut PgConnection, ends: &[AttemptEnd]) -> QueryResult<Vec<bool>> {
    finish_guarded(conn, ends, LeaseGuard::Worker)
}

fn finish_guarded(conn: &mut PgConnection, ends: &[AttemptEnd], guard: LeaseGuard) -> QueryResult<Vec<bool>> {
    let held: HashSet<i64> = task_store::finish_attempts(conn, ends, guard)?
        .into_iter()
        .collect();
    Ok(ends.iter().map(|e| held.contains(&e.lease_token)).collect())
}
