//! ExecutionFollower: keeps TaskPilot's mirror of execution state by following the
//! scheduler's change feed (long-polled). Each page is applied in one transaction with the
//! feed position it moves to, so a crash or restart resumes exactly where it was. When the
//! feed no longer has the position (410, after a long outage) it reconciles: re-reads every
//! unfinished bound task from the scheduler, then follows from the feed's end. Of several
//! TaskPilot processes one follows at a time (an advisory lock); another takes over when the
//! holder's connection dies.

use std::time::Duration;

use diesel::prelude::*;
use diesel::sql_types::Bool;
use futures_util::stream::{self, StreamExt};
use service_http::request_trace::RequestContext;
use service_postgres::dedicated_connection::DedicatedConnection;
use service_postgres::PgPool;
use tokio_util::sync::CancellationToken;

use crate::domain::ExecutionRecord;
use crate::scheduler_client::{SchedulerClient, SchedulerError};
use crate::store::task_executions::{self as execution_store, UnfinishedBinding};
use crate::store::{self, StoreError};

/// The name under which the position in the scheduler's feed is kept.
pub const SCHEDULER_FEED: &str = "dtp";
/// Events read per page.
const PAGE_EVENTS: u32 = 1_000;
/// How long one read of the feed waits for something new.
const LONG_POLL: Duration = Duration::from_secs(10);
/// How often a process that does not follow tries to take over.
const TAKEOVER_EVERY: Duration = Duration::from_secs(1);
/// Pause after a failed round (scheduler or database unavailable).
const RETRY_AFTER_FAILURE: Duration = Duration::from_millis(500);
/// How often old applied events are deleted, and how many per statement.
const CLEANUP_EVERY: Duration = Duration::from_secs(60);
const CLEANUP_BATCH: i64 = 1_000;
/// Bound web tasks a reconcile reads per batch, and scheduler reads it makes at once.
const RECONCILE_BATCH: i64 = 500;
const RECONCILE_READS_AT_ONCE: usize = 16;

/// The follower's connection is named, so that an operator sees who holds the lock.
const FOLLOWER_SESSION: &str = "SET application_name = 'taskpilot-execution-follower'";

/// Held by the process that follows, on its own connection: while that connection lives.
const FOLLOWER_LOCK: &str = "SELECT CASE WHEN EXISTS ( \
         SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() \
           AND classid = 1413 AND objid = 4654 AND objsubid = 2 AND granted \
     ) THEN true ELSE pg_try_advisory_lock(1413, 4654) END AS leading";

/// Why a round of following failed (it is retried).
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the scheduler's feed could not be read: {0}")]
    Scheduler(SchedulerError),
}

/// What one round did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Round {
    /// Another process follows.
    NotLeading,
    /// A page was applied (its events).
    Applied(usize),
    /// The page was not applied: the position moved meanwhile.
    Superseded,
    /// The mirror was re-read from the scheduler (how many tasks).
    Reconciled(usize),
}

#[derive(Clone)]
pub struct ExecutionFollower {
    pool: PgPool,
    scheduler: SchedulerClient,
    leader: std::sync::Arc<DedicatedConnection>,
    event_retention: Duration,
}

impl ExecutionFollower {
    /// A follower that keeps the events it applied for `event_retention`.
    pub fn new(pool: PgPool, scheduler: SchedulerClient, event_retention: Duration) -> Self {
        Self {
            leader: std::sync::Arc::new(DedicatedConnection::new(pool.clone(), FOLLOWER_SESSION)),
            pool,
            scheduler,
            event_retention,
        }
    }

    /// Deletes the applied events older than their retention, a batch at a time; how many.
    pub async fn delete_old_events(&self) -> Result<usize, StoreError> {
        let before = chrono::Utc::now()
            - chrono::Duration::from_std(self.event_retention).unwrap_or(chrono::Duration::MAX);
        let mut deleted = 0;
        loop {
            let batch = store::run(&self.pool, move |conn| {
                execution_store::delete_events_applied_before(conn, before, CLEANUP_BATCH)
            })
            .await?;
            deleted += batch;
            if batch == 0 {
                return Ok(deleted);
            }
        }
    }

    /// Follows until `shutdown` fires; while it leads, also deletes old applied events.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut cleaned_at = tokio::time::Instant::now();
        loop {
            let round = tokio::select! {
                round = self.follow_once() => round,
                () = shutdown.cancelled() => return,
            };
            let leading = matches!(
                round,
                Ok(Round::Applied(_) | Round::Reconciled(_) | Round::Superseded)
            );
            if leading && cleaned_at.elapsed() >= CLEANUP_EVERY {
                cleaned_at = tokio::time::Instant::now();
                if let Err(e) = self.delete_old_events().await {
                    tracing::warn!(error = %e, "could not delete old applied events");
                }
            }
            let pause = match round {
                Ok(Round::NotLeading) => TAKEOVER_EVERY,
                Ok(_) => Duration::ZERO,
                Err(e) => {
                    tracing::warn!(error = %e, "execution follower round failed");
                    RETRY_AFTER_FAILURE
                }
            };
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = shutdown.cancelled() => return,
            }
        }
    }

    /// One round: if this process follows, reads one page (waiting for one) and applies it,
    /// or reconciles when there is no position or the feed no longer has it.
    pub async fn follow_once(&self) -> Result<Round, FollowError> {
        #[derive(QueryableByName)]
        struct Leading {
            #[diesel(sql_type = Bool)]
            leading: bool,
        }
        let leading = self
            .leader
            .run(|conn| diesel::sql_query(FOLLOWER_LOCK).get_result::<Leading>(conn))
            .await?;
        if !leading.leading {
            return Ok(Round::NotLeading);
        }
        let position = self
            .leader
            .run(|conn| execution_store::feed_position(conn, SCHEDULER_FEED))
            .await?;
        let Some(after) = position else {
            return self.reconcile(None).await;
        };
        let read_started = std::time::Instant::now();
        let page = match self.scheduler.events(&after, PAGE_EVENTS, LONG_POLL).await {
            Ok(page) => page,
            Err(SchedulerError::Rejected { status: 410, .. }) => {
                tracing::warn!("the scheduler no longer keeps the feed's position; reconciling");
                return self.reconcile(Some(after)).await;
            }
            Err(e) => return Err(FollowError::Scheduler(e)),
        };
        let count = page.events.len();
        let read_ms = read_started.elapsed().as_secs_f64() * 1_000.0;
        let apply_started = std::time::Instant::now();
        let applied = self
            .leader
            .run(move |conn| {
                Ok(execution_store::apply_feed_page(
                    conn,
                    SCHEDULER_FEED,
                    &after,
                    &page.events,
                    &page.next_cursor,
                ))
            })
            .await??;
        if applied {
            if count > 0 {
                let apply_ms = apply_started.elapsed().as_secs_f64() * 1_000.0;
                tracing::debug!(
                    events = count,
                    read_ms,
                    apply_ms,
                    "applied the scheduler's events"
                );
            }
            Ok(Round::Applied(count))
        } else {
            Ok(Round::Superseded)
        }
    }

    /// Re-reads every unfinished bound task from the scheduler, then moves the position
    /// to the feed's end as it was before the reads (so nothing that happens meanwhile is
    /// missed; an event that the reads already saw is applied again, which changes nothing).
    async fn reconcile(&self, expected: Option<String>) -> Result<Round, FollowError> {
        let latest = self
            .scheduler
            .events("latest", 1, Duration::ZERO)
            .await
            .map_err(FollowError::Scheduler)?
            .next_cursor;
        let mut after_id = 0;
        let mut reconciled = 0;
        loop {
            let batch = store::run(&self.pool, move |conn| {
                execution_store::unfinished_bindings(conn, after_id, RECONCILE_BATCH)
            })
            .await?;
            let Some(last) = batch.last() else { break };
            after_id = last.web_task_id;
            let read = self.read_from_scheduler(batch).await?;
            reconciled += read.len();
            if !read.is_empty() {
                store::run(&self.pool, move |conn| {
                    execution_store::write_reconciled(conn, &read)
                })
                .await?;
            }
        }
        let moved = self
            .leader
            .run(move |conn| {
                execution_store::move_feed_position(conn, SCHEDULER_FEED, expected.as_deref(), &latest)
            })
            .await?;
        tracing::info!(
            tasks = reconciled,
            moved,
            "reconciled the execution mirror with the scheduler"
        );
        Ok(Round::Reconciled(reconciled))
    }

    /// The scheduler's record of each binding's task; a task it does not have is skipped.
    async fn read_from_scheduler(
        &self,
        batch: Vec<UnfinishedBinding>,
    ) -> Result<Vec<(UnfinishedBinding, ExecutionRecord)>, FollowError> {
        let context = RequestContext::started_here();
        let reads = stream::iter(batch)
            .map(|binding| {
                let context = &context;
                async move {
                    match self.scheduler.get_task(binding.scheduler_task_id, context).await {
                        Ok(task) => Ok(Some((binding, ExecutionRecord::of_task(&task)))),
                        Err(SchedulerError::NotFound { .. }) => Ok(None),
                        Err(e) => Err(FollowError::Scheduler(e)),
                    }
                }
            })
            .buffer_unordered(RECONCILE_READS_AT_ONCE)
            .collect::<Vec<_>>()
            .await;
        reads.into_iter().filter_map(Result::transpose).collect()
    }
}
