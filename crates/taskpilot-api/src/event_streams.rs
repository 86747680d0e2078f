//! Live updates for clients: Server-Sent Events of the executions TaskPilot mirrors, for one
//! web task or for a tenant's. Each stream reads the applied events from TaskPilot's database
//! after its position, and waits for the follower's announcement of the next batch (from
//! whichever process follows). A consumer that does not keep up is dropped: a stream holds at
//! most `STREAM_BUFFER` frames for it, never more.

use std::time::Duration;

use actix_web::web::Bytes;
use dtp_contract::TaskStatus;
use serde::Serialize;
use service_postgres::notifications::{Listener, Subscriber};
use service_postgres::PgPool;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::store::task_executions::{self as execution_store, StoredEvent};
use crate::store::{self, StoreError};

/// The follower's announcement of applied events (see the `execution_mirror` migration).
pub const EXECUTION_EVENTS_CHANNEL: &str = "taskpilot_execution_events";
/// A comment line this often keeps proxies from closing an idle stream.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Frames a stream holds for a consumer that has not read them yet.
pub const STREAM_BUFFER: usize = 256;
/// Events read per statement.
const READ_BATCH: i64 = 100;

/// Wakes this process's streams when events were applied. Cheap to clone.
#[derive(Clone)]
pub struct EventStreams {
    pool: PgPool,
    applied: watch::Sender<u64>,
    keep_alive: Duration,
}

/// What one stream shows.
#[derive(Debug, Clone)]
pub struct StreamScope {
    pub tenant: String,
    /// One scheduler task's events, ending after its terminal one; `None`: the tenant's.
    pub scheduler_task_id: Option<i64>,
}

/// An event as a stream sends it (`data:`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct StreamedEvent<'a> {
    cursor: &'a str,
    web_task_id: i64,
    task_id: i64,
    #[serde(rename = "type")]
    task_type: &'a str,
    kind: &'a str,
    status: &'a str,
    retry_state: &'a str,
    attempt: i32,
    #[serde(with = "dtp_contract::millis")]
    at: chrono::DateTime<chrono::Utc>,
    error: Option<&'a str>,
}

impl EventStreams {
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            applied: watch::Sender::new(0),
            keep_alive: KEEP_ALIVE,
        }
    }

    /// The same streams with another keep-alive interval (tests wait less than 15 s).
    pub fn with_keep_alive(mut self, every: Duration) -> Self {
        self.keep_alive = every;
        self
    }

    /// Listens for the follower's announcements until `shutdown` fires.
    pub async fn follow(self, database_url: String, shutdown: CancellationToken) {
        let listener = Listener::new(database_url, &[EXECUTION_EVENTS_CHANNEL]);
        listener.run(Wakes(self.applied.clone()), shutdown).await;
    }

    /// The position after the last applied event (where a stream without a start begins).
    pub async fn now(&self) -> Result<i64, StoreError> {
        store::run(&self.pool, execution_store::last_seq).await
    }

    /// The position of the applied event with this cursor; `None` if TaskPilot has none.
    pub async fn position_of(&self, cursor: String) -> Result<Option<i64>, StoreError> {
        store::run(&self.pool, move |conn| {
            execution_store::seq_of_cursor(conn, &cursor)
        })
        .await
    }

    /// Starts a stream of `scope`'s events after position `after`: the receiver yields SSE
    /// frames until the stream ends, the consumer falls `STREAM_BUFFER` frames behind, or
    /// `shutdown` fires.
    pub fn open(&self, scope: StreamScope, after: i64, shutdown: CancellationToken) -> mpsc::Receiver<Bytes> {
        let (frames, receiver) = mpsc::channel(STREAM_BUFFER);
        tokio::spawn(self.clone().produce(scope, after, frames, shutdown));
        receiver
    }

    async fn produce(
        self,
        scope: StreamScope,
        mut after: i64,
        frames: mpsc::Sender<Bytes>,
        shutdown: CancellationToken,
    ) {
        let every = self.keep_alive;
        let mut keep_alive = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        loop {
            let mut woken = self.applied.subscribe();
            woken.mark_unchanged();
            let (tenant, task) = (scope.tenant.clone(), scope.scheduler_task_id);
            let events = match store::run(&self.pool, move |conn| {
                execution_store::events_after(conn, &tenant, task, after, READ_BATCH)
            })
            .await
            {
                Ok(events) => events,
                Err(e) => {
                    tracing::warn!(error = %e, "an event stream could not read; closing it");
                    return;
                }
            };
            let full = i64::try_from(events.len()).unwrap_or(i64::MAX) >= READ_BATCH;
            for event in &events {
                if !send(&frames, frame(event)) {
                    return;
                }
                after = event.seq;
                let finished = TaskStatus::parse(&event.status).is_some_and(TaskStatus::is_terminal);
                if scope.scheduler_task_id.is_some() && finished {
                    return; // The task's last event: its stream ends.
                }
            }
            if full {
                continue;
            }
            tokio::select! {
                _ = woken.changed() => {}
                _ = keep_alive.tick() => {
                    if !send(&frames, Bytes::from_static(b": keep-alive\n\n")) {
                        return;
                    }
                }
                () = frames.closed() => return,
                () = shutdown.cancelled() => return,
            }
        }
    }
}

/// Queues a frame; false when the stream must end (the consumer left, or is too far behind).
fn send(frames: &mpsc::Sender<Bytes>, frame: Bytes) -> bool {
    match frames.try_send(frame) {
        Ok(()) => true,
        Err(mpsc::error::TrySendError::Full(_)) => {
            tracing::info!(
                buffered = STREAM_BUFFER,
                "dropping an event stream whose consumer does not keep up"
            );
            false
        }
        Err(mpsc::error::TrySendError::Closed(_)) => false,
    }
}

/// One SSE frame: `id:` the feed's cursor, `event:` the kind, `data:` the event as JSON.
fn frame(event: &StoredEvent) -> Bytes {
    let data = StreamedEvent {
        cursor: &event.cursor,
        web_task_id: event.web_task_id,
        task_id: event.scheduler_task_id,
        task_type: &event.scheduler_type,
        kind: &event.kind,
        status: &event.status,
        retry_state: &event.retry_state,
        attempt: event.attempt,
        at: event.at,
        error: event.error.as_deref(),
    };
    let json =
        serde_json::to_string(&data).unwrap_or_else(|e| unreachable!("an event always serializes: {e}"));
    Bytes::from(format!(
        "id: {}\nevent: {}\ndata: {json}\n\n",
        event.cursor, event.kind
    ))
}

struct Wakes(watch::Sender<u64>);

impl Subscriber for Wakes {
    fn subscribed(&self) {
        // Announcements sent while the listener was away went to nobody: look again.
        self.0.send_modify(|v| *v = v.wrapping_add(1));
    }

    fn notified(&self, _channel: &str, _payload: &str) {
        self.0.send_modify(|v| *v = v.wrapping_add(1));
    }
}
