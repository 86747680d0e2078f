//! Where attempts report their end: `Tasks` writes it with the other ends waiting (one
//! lease-guarded statement per group), and a written end wakes the change feed's readers.

use crate::change_feed::FeedSignal;
use crate::store::tasks::{AttemptEnd, Tasks};
use crate::store::StoreError;

/// Whose attempts a completer ends, which decides how each end is guarded.
#[derive(Debug, Clone, Copy)]
enum Attempts {
    /// The engine's own: guarded by the lease token and the RUNNING status.
    Engine,
    /// Leased by workers outside the engine: also by the lease's secret and expiry.
    Leased,
}

/// The handle attempts report through. Cheap to clone.
#[derive(Clone)]
pub struct AttemptCompleter {
    tasks: Tasks,
    feed: FeedSignal,
    attempts: Attempts,
}

impl AttemptCompleter {
    /// The completer of the engine's own attempts.
    pub fn for_engine(tasks: Tasks, feed: FeedSignal) -> Self {
        Self {
            tasks,
            feed,
            attempts: Attempts::Engine,
        }
    }

    /// The completer of the ends that workers outside the engine report.
    pub fn for_workers(tasks: Tasks, feed: FeedSignal) -> Self {
        Self {
            tasks,
            feed,
            attempts: Attempts::Leased,
        }
    }

    /// Writes `end` with the next group: `Ok(true)` when the attempt still held its task,
    /// `Ok(false)` when it was fenced off (canceled, rescued, superseded).
    pub async fn complete(&self, end: AttemptEnd) -> Result<bool, StoreError> {
        let held = match self.attempts {
            Attempts::Engine => self.tasks.finish(end).await?,
            Attempts::Leased => self.tasks.finish_leased(end).await?,
        };
        if held {
            self.feed.events_written();
        }
        Ok(held)
    }
}
