//! TaskCleaner: keeps the database bounded. Deletes change-feed events older than their
//! retention, and finished tasks (with their attempts) older than theirs, in small batches so
//! that no statement holds locks for long; each batch takes an advisory lock, so only one
//! engine cleans at a time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use diesel::{PgConnection, QueryResult};
use dtp_contract::TaskStatus;
use service_postgres::PgPool;
use tokio_util::sync::CancellationToken;

use crate::store::{self, task_events as event_store, tasks as task_store, StoreError};

/// Rows deleted per statement: each statement is a burst of CPU and WAL on the cores and
/// the log that claims share, and a claim waiting behind a shorter burst waits less
/// (`bench/RESULTS.md`, retention).
pub const CLEANUP_BATCH: i64 = 250;

/// How long the cleaner keeps things, and how often it looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub events: Duration,
    /// `None`: finished tasks are kept forever.
    pub finished_tasks: Option<Duration>,
    pub interval: Duration,
}

pub const DEFAULT_EVENT_RETENTION: Duration = Duration::from_secs(168 * 3_600);
pub const DEFAULT_FINISHED_RETENTION: Duration = Duration::from_secs(168 * 3_600);
pub const DEFAULT_CLEANUP_INTERVAL: Duration = Duration::from_secs(60);

impl Default for Retention {
    fn default() -> Self {
        Self {
            events: DEFAULT_EVENT_RETENTION,
            finished_tasks: Some(DEFAULT_FINISHED_RETENTION),
            interval: DEFAULT_CLEANUP_INTERVAL,
        }
    }
}

/// What one cleanup deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cleaned {
    pub events: usize,
    pub tasks: usize,
    /// Batches written (each its own short transaction).
    pub batches: usize,
}

#[derive(Clone)]
pub struct TaskCleaner {
    pool: PgPool,
    retention: Retention,
}

impl TaskCleaner {
    pub fn new(pool: PgPool, retention: Retention) -> Self {
        Self { pool, retention }
    }

    /// Cleans every `interval` until `shutdown` fires.
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                () = tokio::time::sleep(self.retention.interval) => {}
                () = shutdown.cancelled() => return,
            }
            match self.clean(&shutdown).await {
                Ok(cleaned) if cleaned.events + cleaned.tasks > 0 => tracing::info!(
                    events = cleaned.events,
                    tasks = cleaned.tasks,
                    batches = cleaned.batches,
                    "deleted what retention no longer keeps"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cleanup failed"),
            }
        }
    }

    /// Deletes, batch by batch, everything older than its retention; stops early when
    /// another engine is cleaning or `shutdown` fires.
    pub async fn clean(&self, shutdown: &CancellationToken) -> Result<Cleaned, StoreError> {
        let mut cleaned = Cleaned::default();
        let chrono_age = |age: Duration| chrono::Duration::from_std(age).unwrap_or(chrono::Duration::MAX);
        let events_before = Utc::now() - chrono_age(self.retention.events);
        let delete_events = move |conn: &mut PgConnection, _after: i64| {
            let deleted = event_store::delete_events_before(conn, events_before, CLEANUP_BATCH)?;
            // The feed is deleted from its oldest group on; it needs no resume point.
            Ok(task_store::DeletedBatch {
                deleted,
                last_id: None,
            })
        };
        match self
            .delete_in_batches(shutdown, &mut cleaned.batches, delete_events)
            .await?
        {
            Some(deleted) => cleaned.events = deleted,
            None => return Ok(cleaned),
        }
        let Some(age) = self.retention.finished_tasks else {
            return Ok(cleaned);
        };
        let tasks_before = Utc::now() - chrono_age(age);
        let task_types = store::run(&self.pool, task_store::types_with_listed_tasks).await?;
        for task_type in task_types {
            let task_type: Arc<str> = task_type.into();
            for status in [TaskStatus::Succeeded, TaskStatus::Failed, TaskStatus::Canceled] {
                let task_type = Arc::clone(&task_type);
                let delete_tasks = move |conn: &mut PgConnection, after: i64| {
                    task_store::delete_finished_tasks(
                        conn,
                        &task_type,
                        status,
                        tasks_before,
                        after,
                        CLEANUP_BATCH,
                    )
                };
                match self
                    .delete_in_batches(shutdown, &mut cleaned.batches, delete_tasks)
                    .await?
                {
                    Some(deleted) => cleaned.tasks += deleted,
                    None => return Ok(cleaned),
                }
            }
        }
        Ok(cleaned)
    }

    /// Runs `delete` under the cleanup lock until it deletes nothing, resting after each
    /// batch, and telling each batch where the last one ended; how many rows went, or `None`
    /// when another engine is cleaning.
    async fn delete_in_batches(
        &self,
        shutdown: &CancellationToken,
        batches: &mut usize,
        delete: impl Fn(&mut PgConnection, i64) -> QueryResult<task_store::DeletedBatch> + Clone + Send + 'static,
    ) -> Result<Option<usize>, StoreError> {
        let mut deleted = 0;
        let mut after = 0;
        while !shutdown.is_cancelled() {
            let started = Instant::now();
            let delete = delete.clone();
            let batch = store::run(&self.pool, move |conn| {
                task_store::under_cleanup_lock(conn, |conn| delete(conn, after))
            })
            .await?;
            rest_after(started, shutdown).await;
            let Some(batch) = batch else { return Ok(None) };
            *batches += 1;
            deleted += batch.deleted;
            if batch.deleted == 0 {
                break;
            }
            if let Some(last) = batch.last_id {
                after = last;
            }
        }
        Ok(Some(deleted))
    }
}

/// Rests as long as the batch begun at `started` took (or until `shutdown`).
async fn rest_after(started: Instant, shutdown: &CancellationToken) {
    tokio::select! {
        () = tokio::time::sleep(started.elapsed()) => {}
        () = shutdown.cancelled() => {}
    }
}
