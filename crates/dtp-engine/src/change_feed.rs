//! The change feed's use cases: reading a page of events (waiting for one when asked), and
//! telling readers in every engine that events were written. Waiting readers are woken by
//! `FeedSignal`: at once for events this process wrote, by a notification for the others'.

use std::sync::Arc;
use std::time::Duration;

use dtp_contract::{ChangeEvent, EventKind, RetryState, TaskStatus};
use service_postgres::PgPool;
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

use crate::domain::feed_position::{is_expired, FeedPosition, FeedStart};
use crate::store::task_events::{self as event_store, EventRow};
use crate::store::{self, StoreError};

/// The channel on which engines tell each other that they wrote events.
pub const EVENTS_CHANNEL: &str = "dtp_task_events";

/// Announcements are sent at most this often: readers are woken within this long of a
/// commit, and a busy engine does not send one notification per statement.
const ANNOUNCE_SPACING: Duration = Duration::from_millis(1);

/// How soon a waiting reader looks again when committed events were held back by an older
/// transaction still running (whose end may announce nothing).
const HELD_BACK_RECHECK: Duration = Duration::from_millis(20);

/// Wakes the feed's waiting readers. Cheap to clone.
#[derive(Clone)]
pub struct FeedSignal {
    inner: Arc<SignalShared>,
}

struct SignalShared {
    version: watch::Sender<u64>,
    to_announce: Notify,
}

impl Default for FeedSignal {
    fn default() -> Self {
        Self {
            inner: Arc::new(SignalShared {
                version: watch::Sender::new(0),
                to_announce: Notify::new(),
            }),
        }
    }
}

impl FeedSignal {
    /// This process committed a change of some task: wake its readers, and the other engines'.
    pub fn events_written(&self) {
        self.wake_readers();
        self.inner.to_announce.notify_one();
    }

    /// Events may have been written elsewhere: wake this process's readers.
    pub fn wake_readers(&self) {
        self.inner.version.send_modify(|v| *v = v.wrapping_add(1));
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.version.subscribe()
    }

    /// Sends this process's announcements to the other engines until `shutdown` fires.
    pub async fn announce(self, pool: PgPool, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                () = self.inner.to_announce.notified() => {}
                () = shutdown.cancelled() => return,
            }
            if let Err(e) = store::run(&pool, event_store::announce_events).await {
                tracing::debug!(error = %e, "could not announce written events");
            }
            tokio::select! {
                () = tokio::time::sleep(ANNOUNCE_SPACING) => {}
                () = shutdown.cancelled() => return,
            }
        }
    }
}

/// A read of the feed, validated.
#[derive(Debug, Clone)]
pub struct FeedRead {
    pub start: FeedStart,
    pub limit: i64,
    pub wait: Duration,
    /// Only events of these task types; `None`: all.
    pub task_types: Option<Vec<String>>,
    /// Only events of the tasks this caller submitted; `None`: everyone's (an admin).
    pub submitted_by: Option<String>,
}

/// Why a read of the feed was refused.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    /// The cursor is older than what retention keeps: events after it are gone.
    #[error("the cursor is older than the events kept; list the tasks again and read on from \"latest\"")]
    Expired,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A page for the client: events and where to read on.
pub struct FeedPage {
    pub events: Vec<ChangeEvent>,
    pub next: FeedPosition,
}

/// Reads the change feed.
#[derive(Clone)]
pub struct ChangeFeed {
    pool: PgPool,
    signal: FeedSignal,
    /// Fires at shutdown: a waiting read answers what it has, so that the server drains at once.
    shutdown: CancellationToken,
}

impl ChangeFeed {
    pub fn new(pool: PgPool, signal: FeedSignal, shutdown: CancellationToken) -> Self {
        Self {
            pool,
            signal,
            shutdown,
        }
    }

    /// The events after `read.start`, waiting up to `read.wait` for the first when none
    /// is final yet; `client_waits` tells whether the caller is still there.
    pub async fn read(&self, read: FeedRead, client_waits: impl Fn() -> bool) -> Result<FeedPage, FeedError> {
        let deadline = tokio::time::Instant::now() + read.wait;
        let mut after = match read.start {
            FeedStart::Oldest => None,
            FeedStart::After(position) => Some(position),
            FeedStart::Latest => Some(store::run(&self.pool, event_store::latest_position).await?),
        };
        loop {
            let mut woken = self.signal.subscribe();
            woken.mark_unchanged();
            let (types, submitter) = (read.task_types.clone(), read.submitted_by.clone());
            let limit = read.limit;
            let page = store::run(&self.pool, move |conn| {
                event_store::read_events(conn, after, limit, types.as_deref(), submitter.as_deref())
            })
            .await?;
            if let Some(position) = after {
                if is_expired(position, page.deleted_up_to) {
                    return Err(FeedError::Expired);
                }
            }
            let next = page.bounds.next();
            let now = tokio::time::Instant::now();
            if !page.events.is_empty() || now >= deadline || !client_waits() || self.shutdown.is_cancelled() {
                let events = page.events.into_iter().map(to_wire).collect::<Result<_, _>>()?;
                return Ok(FeedPage { events, next });
            }
            after = Some(next);
            let recheck = if page.held_back {
                now + HELD_BACK_RECHECK
            } else {
                deadline
            };
            tokio::select! {
                _ = woken.changed() => {}
                () = tokio::time::sleep_until(recheck.min(deadline)) => {}
                () = self.shutdown.cancelled() => {}
            }
        }
    }
}

fn to_wire(row: EventRow) -> Result<ChangeEvent, StoreError> {
    let corrupt = |what: &str, value: &str| {
        StoreError::CorruptRow(format!(
            "event ({}, {}) has {what} {value:?}",
            row.xact, row.position
        ))
    };
    let kind = EventKind::parse(&row.kind).ok_or_else(|| corrupt("kind", &row.kind))?;
    let status = TaskStatus::parse(&row.status).ok_or_else(|| corrupt("status", &row.status))?;
    let retry_state =
        RetryState::parse(&row.retry_state).ok_or_else(|| corrupt("retry state", &row.retry_state))?;
    Ok(ChangeEvent {
        cursor: row.feed_position().to_cursor(),
        task_id: row.task_id,
        task_type: row.task_type,
        kind,
        status,
        retry_state,
        attempt: row.attempt,
        at: row.at,
        error: row.error,
        idempotency_key: row.idempotency_key,
    })
}
