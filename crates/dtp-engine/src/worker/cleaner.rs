//! TaskCleaner: keeps the database bounded. Deletes change-feed events older than their
//! retention, and finished tasks (with their attempts) older than theirs, in small batches so
//! that no statement holds locks for long; each batch takes an advisory lock, so only one
//! engine cleans at a time.

use std::time::{Duration, Instant};

use chrono::Utc;
use dtp_contract::TaskStatus;
use service_runtime::PgPool;
use tokio_util::sync::CancellationToken;

use crate::store::{self, task_events as event_store, tasks as task_store, StoreError};

/// Rows deleted per statement.
pub const CLEANUP_BATCH: i64 = 1_000;

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
        while !shutdown.is_cancelled() {
            let started = Instant::now();
            let deleted = store::run(&self.pool, move |conn| {
                task_store::under_cleanup_lock(conn, |conn| {
                    event_store::delete_events_before(conn, events_before, CLEANUP_BATCH)
                })
            })
            .await?;
            rest_after(started, shutdown).await;
            let Some(deleted) = deleted else {
                return Ok(cleaned);
            };
            cleaned.events += deleted;
            cleaned.batches += 1;
            if deleted < CLEANUP_BATCH as usize {
                break;
            }
        }
        let Some(age) = self.retention.finished_tasks else {
            return Ok(cleaned);
        };
        let tasks_before = Utc::now() - chrono_age(age);
        for status in [TaskStatus::Succeeded, TaskStatus::Failed, TaskStatus::Canceled] {
            while !shutdown.is_cancelled() {
                let started = Instant::now();
                let deleted = store::run(&self.pool, move |conn| {
                    task_store::under_cleanup_lock(conn, |conn| {
                        task_store::delete_finished_tasks(conn, status, tasks_before, CLEANUP_BATCH)
                    })
                })
                .await?;
                rest_after(started, shutdown).await;
                let Some(deleted) = deleted else {
                    return Ok(cleaned);
                };
                cleaned.tasks += deleted;
                cleaned.batches += 1;
                if deleted == 0 {
                    break;
                }
            }
        }
        Ok(cleaned)
    }
}

/// Rests as long as the batch begun at `started` took (or until `shutdown`).
async fn rest_after(started: Instant, shutdown: &CancellationToken) {
    tokio::select! {
        () = tokio::time::sleep(started.elapsed()) => {}
        () = shutdown.cancelled() => {}
    }
}
