//! The change feed on the wire (`GET /events`): every change of a task's state, in the order
//! the engine made them, read page by page by following `nextCursor`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{millis, RetryState, TaskStatus};

/// What happened to a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EventKind {
    /// The task was accepted (PENDING).
    Created,
    /// An attempt began: an engine handler, an HTTP target or a worker's lease (RUNNING).
    Started,
    /// An attempt failed and another is scheduled (PENDING).
    RetryScheduled,
    Succeeded,
    /// The last attempt failed, or failed in a way no retry mends.
    Failed,
    Canceled,
    /// The rescuer found the attempt's lease run out: retried (PENDING) or FAILED.
    Lost,
    /// The attempt was given back unfinished and not counted (PENDING).
    Released,
}

crate::wire_names!(EventKind {
    Created => "CREATED",
    Started => "STARTED",
    RetryScheduled => "RETRY_SCHEDULED",
    Succeeded => "SUCCEEDED",
    Failed => "FAILED",
    Canceled => "CANCELED",
    Lost => "LOST",
    Released => "RELEASED",
});

/// One change of one task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", schema(example = json!({
    "cursor": "AAAAAAAAAu0AAAAAAAAAEQ", "taskId": 42, "type": "send-email", "kind": "RETRY_SCHEDULED",
    "status": "PENDING", "retryState": "RETRY_SCHEDULED", "attempt": 1,
    "at": "2026-12-02T10:00:00.145Z", "error": "HTTP 503 from the target", "idempotencyKey": "invoice-42"
})))]
pub struct ChangeEvent {
    /// This event's place in the feed (opaque): `after=<cursor>` reads what follows it.
    pub cursor: String,
    pub task_id: i64,
    #[serde(rename = "type")]
    pub task_type: String,
    pub kind: EventKind,
    /// The task's status after the change.
    pub status: TaskStatus,
    pub retry_state: RetryState,
    /// Attempts counted after the change (a released attempt is not counted).
    pub attempt: i32,
    #[serde(with = "millis")]
    pub at: DateTime<Utc>,
    /// The failure, for `RETRY_SCHEDULED`, `FAILED` and `LOST`; null otherwise.
    pub error: Option<String>,
    /// The task's `idempotencyKey`, if it was submitted with one.
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

/// One page of the feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct EventPage {
    pub events: Vec<ChangeEvent>,
    /// Pass as `after` to read on; also when `events` is empty.
    pub next_cursor: String,
}
