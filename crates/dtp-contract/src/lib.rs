//! The DTP wire contract: request and response bodies of the engine's HTTP API,
//! shared by the engine and by every client (TaskPilot among them).
//! Serde and chrono only: this crate describes JSON and no transport. What both services
//! refuse to store is decided here too (`check_storable`: what Postgres `jsonb` cannot keep),
//! so that the engine and its clients refuse the same payloads.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

pub mod events;
pub mod integral;
pub mod leases;
pub mod millis;
#[cfg(feature = "openapi")]
pub mod payload_schema;
pub mod task_types;
mod wire_names;
pub use events::{ChangeEvent, EventKind, EventPage};
pub use leases::{
    CompleteRequest, FailRequest, HeartbeatRequest, HeartbeatResponse, Lease, LeaseBatch, LeaseLostBody,
    LeaseLostReason, LeaseRequest,
};
#[cfg(feature = "openapi")]
pub use payload_schema::StorableJson;
pub use task_types::{HttpDelivery, HttpTargetInfo, TaskTypeInfo, TaskTypeKind, TaskTypeList};
pub use wire_names::UnknownName;

/// Execution status of a scheduler task. Only the engine moves a task between them (its
/// state machine decides each move); who does what is said on each status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TaskStatus {
    /// Waiting to run. Into it: a submission; a failed attempt with attempts left (a retry, due
    /// after its backoff); the rescuer, for a lost lease with attempts left; a release at
    /// shutdown or by a worker. Out of it: a claim (the engine's worker or a worker's lease)
    /// to RUNNING, or a cancel.
    Pending,
    /// An attempt holds a lease. Into it: a claim. Out of it: the attempt's end, written by
    /// the lease holder (the engine's completer, or a worker's complete/fail); the rescuer once
    /// the lease expired; a release; a cancel.
    Running,
    /// Terminal: the attempt holding the lease succeeded.
    Succeeded,
    /// Terminal: the last attempt failed or was lost (`EXHAUSTED`), or an attempt failed
    /// without retry (`NOT_RETRYABLE`).
    Failed,
    /// Terminal: a cancel, from PENDING or RUNNING (the running attempt is stopped and its
    /// result discarded).
    Canceled,
}

wire_names!(TaskStatus {
    Pending => "PENDING",
    Running => "RUNNING",
    Succeeded => "SUCCEEDED",
    Failed => "FAILED",
    Canceled => "CANCELED",
});

impl TaskStatus {
    /// A terminal status never changes again.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskStatus::Succeeded | TaskStatus::Failed | TaskStatus::Canceled
        )
    }
}

/// Where a task stands with respect to retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RetryState {
    /// No attempt has failed (yet).
    None,
    /// An attempt failed; the next one is due at `scheduledFor`.
    RetryScheduled,
    /// The task FAILED after using all of its attempts.
    Exhausted,
    /// The task FAILED at once: its last attempt failed in a way a retry cannot mend (an
    /// HTTP target's 4xx, a handler's or a worker's "do not retry", a payload of the wrong shape).
    NotRetryable,
    /// The task SUCCEEDED.
    Completed,
    /// The task was CANCELED.
    Canceled,
}

wire_names!(RetryState {
    None => "NONE",
    RetryScheduled => "RETRY_SCHEDULED",
    Exhausted => "EXHAUSTED",
    NotRetryable => "NOT_RETRYABLE",
    Completed => "COMPLETED",
    Canceled => "CANCELED",
});

/// `POST /tasks` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "openapi", schema(example = json!({
    "type": "demo-slow", "payload": {"sleepMs": 20}, "maxAttempts": 3, "idempotencyKey": "order-1042"
})))]
pub struct CreateTaskRequest {
    /// One of the task types the engine runs.
    #[serde(rename = "type")]
    pub task_type: String,
    /// Any JSON, handed to the task's handler.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = StorableJson))]
    pub payload: serde_json::Value,
    /// 1 to 100, default 3.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "integral::option_i32"
    )]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 100))]
    pub max_attempts: Option<i32>,
    /// Submitting again with the same key returns the task it already names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 255))]
    pub idempotency_key: Option<String>,
    /// When the task may run first (RFC 3339, years 1970 to 9999); a time in the past means now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(pattern = "^(19[7-9][0-9]|[2-9][0-9]{3})-"))]
    pub run_at: Option<DateTime<Utc>>,
    /// Per-attempt time limit, 1 ms to 24 h; the task type's default when absent.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "integral::option_i32"
    )]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 86_400_000))]
    pub timeout_ms: Option<i32>,
}

/// `POST /tasks/batch` body: 1 to 1000 tasks, accepted or refused together.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "openapi", schema(example = json!({"tasks": [
    {"type": "demo", "payload": {"n": 1}},
    {"type": "demo-slow", "payload": {"sleepMs": 50}, "idempotencyKey": "nightly-2026-11-23"}
]})))]
pub struct CreateTaskBatchRequest {
    #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 1000))]
    pub tasks: Vec<CreateTaskRequest>,
}

/// `POST /tasks/batch` answer: the task that answers each submitted item, in request order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct TaskBatchResponse {
    pub tasks: Vec<TaskResponse>,
}

/// A scheduler task as the engine reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", schema(example = json!({
    "id": 41, "type": "demo-slow", "payload": {"sleepMs": 20}, "status": "SUCCEEDED", "attemptCount": 1,
    "maxAttempts": 3, "timeoutMs": 300000, "retryState": "COMPLETED", "lastError": null,
    "createdAt": "2026-11-23T10:00:00.120Z", "scheduledFor": "2026-11-23T10:00:00.120Z",
    "processingStartedAt": "2026-11-23T10:00:00.122Z", "completedAt": "2026-11-23T10:00:00.145Z",
    "updatedAt": "2026-11-23T10:00:00.145Z", "result": {"delivered": true}
})))]
pub struct TaskResponse {
    pub id: i64,
    #[serde(rename = "type")]
    pub task_type: String,
    pub payload: serde_json::Value,
    pub status: TaskStatus,
    pub attempt_count: i32,
    pub max_attempts: i32,
    pub timeout_ms: i32,
    pub retry_state: RetryState,
    pub last_error: Option<String>,
    #[serde(with = "millis")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "millis")]
    pub scheduled_for: DateTime<Utc>,
    #[serde(with = "millis::option")]
    pub processing_started_at: Option<DateTime<Utc>>,
    #[serde(with = "millis::option")]
    pub completed_at: Option<DateTime<Utc>>,
    #[serde(with = "millis")]
    pub updated_at: DateTime<Utc>,
    /// What the task produced when it SUCCEEDED (a handler's value, a worker's result, an
    /// HTTP target's JSON answer), at most 64 KiB; null otherwise.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = StorableJson))]
    pub result: Option<serde_json::Value>,
}

/// Largest result a task may keep, in bytes of compact JSON.
pub const MAX_RESULT_BYTES: usize = 64 * 1024;

/// Bytes of `value` written as compact JSON, counted without building the text.
pub fn json_size(value: &serde_json::Value) -> usize {
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    // Writing a `Value` into a sink that never fails cannot fail.
    let _ = serde_json::to_writer(&mut counter, value);
    counter.0
}

/// One page of `GET /tasks`, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct TaskPage {
    pub items: Vec<TaskResponse>,
    /// Pass as `cursor` to get the next (older) page; null on the last page.
    pub next_cursor: Option<String>,
}

/// One attempt of a task, from `GET /tasks/{id}/attempts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", schema(example = json!({
    "attempt": 1, "workerId": "dtp-4242-1a2b", "dueAt": "2026-11-23T10:00:00.120Z",
    "startedAt": "2026-11-23T10:00:00.122Z", "finishedAt": "2026-11-23T10:00:00.145Z",
    "outcome": "SUCCEEDED", "error": null
})))]
pub struct AttemptResponse {
    /// 1-based attempt number (an attempt released at shutdown is repeated under the same number).
    pub attempt: i32,
    pub worker_id: String,
    /// When the task became due for this attempt (its `scheduledFor` when claimed); null
    /// for attempts recorded before the engine kept it.
    #[serde(default, with = "millis::option")]
    pub due_at: Option<DateTime<Utc>>,
    #[serde(with = "millis")]
    pub started_at: DateTime<Utc>,
    #[serde(with = "millis::option")]
    pub finished_at: Option<DateTime<Utc>>,
    /// `SUCCEEDED`, `FAILED`, `TIMED_OUT`, `CANCELED`, `LOST`, `RELEASED`, or null while running.
    pub outcome: Option<String>,
    pub error: Option<String>,
}

/// The body of every error answer, on both services.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", schema(example = json!({
    "code": "TASK_NOT_FOUND", "message": "task 999 not found"
})))]
pub struct ErrorBody {
    /// Stable, machine-readable error code, e.g. `TASK_NOT_FOUND`.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
}

/// How much of a client's input an error message repeats.
pub const ECHO_CHARS: usize = 100;

/// `raw` as an error message may show it: at most `ECHO_CHARS` characters, then `…`, so that
/// a megabyte of input is not answered with a megabyte of error.
pub fn shown(raw: &str) -> String {
    let mut chars = raw.chars();
    let head: String = chars.by_ref().take(ECHO_CHARS).collect();
    if chars.next().is_some() {
        format!("{head}…")
    } else {
        head
    }
}

/// Why Postgres `jsonb` cannot keep a JSON value as given. Neither service accepts such
/// a value: it would be stored but break every later read of its row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnstorableJson {
    /// U+0000 in a string or key: `jsonb` refuses it.
    NulCharacter,
    /// A number of magnitude 1e308 or more: `jsonb` keeps all its digits, which no longer
    /// read back as a double.
    NumberTooLarge,
    /// Arrays and objects nested more levels than allowed (`MAX_JSON_DEPTH` at DTP).
    TooDeep { max_depth: usize },
}

impl fmt::Display for UnstorableJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let UnstorableJson::TooDeep { max_depth } = self {
            return write!(
                f,
                "must not nest arrays and objects more than {max_depth} levels deep"
            );
        }
        f.write_str(match self {
            UnstorableJson::NulCharacter => "must not contain the NUL character (\\u0000)",
            UnstorableJson::NumberTooLarge => "must not hold numbers of magnitude 1e308 or more",
            UnstorableJson::TooDeep { .. } => unreachable!("written above"),
        })
    }
}

/// Largest number magnitude (exclusive) that survives a round trip through `jsonb`.
pub const MAX_STORABLE_MAGNITUDE: f64 = 1e308;

/// Most arrays and objects a stored JSON value may nest. Parsers stop at 128 levels and
/// TaskPilot wraps a payload two levels deeper before submitting it, so a cap well below
/// that keeps every value it accepts submittable.
pub const MAX_JSON_DEPTH: usize = 100;

/// The first reason, at any depth, why `value` cannot be stored in `jsonb` and read back.
pub fn check_storable(value: &serde_json::Value) -> Result<(), UnstorableJson> {
    check_storable_within(value, MAX_JSON_DEPTH)
}

/// `check_storable` for a value that will be nested inside others: at most `max_depth` levels.
pub fn check_storable_within(value: &serde_json::Value, max_depth: usize) -> Result<(), UnstorableJson> {
    check_nested(value, 0, max_depth)
}

fn check_nested(value: &serde_json::Value, depth: usize, max_depth: usize) -> Result<(), UnstorableJson> {
    use serde_json::Value;
    let inside = depth + 1;
    match value {
        Value::String(s) if s.contains('\0') => Err(UnstorableJson::NulCharacter),
        Value::Number(n) if n.as_f64().is_some_and(|f| f.abs() >= MAX_STORABLE_MAGNITUDE) => {
            Err(UnstorableJson::NumberTooLarge)
        }
        Value::Array(_) | Value::Object(_) if inside > max_depth => {
            Err(UnstorableJson::TooDeep { max_depth })
        }
        Value::Array(items) => items
            .iter()
            .try_for_each(|item| check_nested(item, inside, max_depth)),
        Value::Object(fields) => fields.iter().try_for_each(|(key, value)| {
            if key.contains('\0') {
                return Err(UnstorableJson::NulCharacter);
            }
            check_nested(value, inside, max_depth)
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_what_jsonb_cannot_keep_at_any_depth() {
        use serde_json::json;
        let nul = Err(UnstorableJson::NulCharacter);
        assert_eq!(check_storable(&json!("a\u{0}")), nul);
        assert_eq!(check_storable(&json!({"k\u{0}": 1})), nul);
        assert_eq!(check_storable(&json!([[{"deep": ["\u{0}"]}]])), nul);
        let huge = Err(UnstorableJson::NumberTooLarge);
        assert_eq!(check_storable(&json!(1.797_693_134_862_315_7e308)), huge);
        assert_eq!(check_storable(&json!({"a": [-1e308]})), huge);
        assert_eq!(
            check_storable(&json!({"a": ["x", 1, null, {"b": 9.9e307, "c": 1e-300}]})),
            Ok(())
        );
        let nested = |levels: usize| (0..levels).fold(json!(1), |inner, _| json!([inner]));
        assert_eq!(check_storable(&nested(MAX_JSON_DEPTH)), Ok(()));
        let too_deep = Err(UnstorableJson::TooDeep {
            max_depth: MAX_JSON_DEPTH,
        });
        assert_eq!(check_storable(&nested(MAX_JSON_DEPTH + 1)), too_deep);
        assert_eq!(check_storable(&json!({"k": nested(MAX_JSON_DEPTH)})), too_deep);
        assert_eq!(
            check_storable_within(&nested(3), 2).unwrap_err().to_string(),
            "must not nest arrays and objects more than 2 levels deep"
        );
    }

    #[test]
    fn statuses_round_trip_through_their_names() {
        for status in TaskStatus::ALL {
            assert_eq!(TaskStatus::parse(status.as_str()), Some(status));
            let json = serde_json::to_string(&status).unwrap();
            assert_eq!(json, format!("\"{}\"", status.as_str()));
        }
        for state in RetryState::ALL {
            assert_eq!(RetryState::parse(state.as_str()), Some(state));
            let json = serde_json::to_string(&state).unwrap();
            assert_eq!(json, format!("\"{}\"", state.as_str()));
        }
        assert_eq!(TaskStatus::parse("pending"), None);
    }

    #[test]
    fn create_request_uses_camel_case_and_rejects_unknown_fields() {
        let req: CreateTaskRequest = serde_json::from_str(
            r#"{"type":"demo","payload":{"a":1},"maxAttempts":5,"idempotencyKey":"k","runAt":"2026-01-02T03:04:05.678Z"}"#,
        )
        .unwrap();
        assert_eq!(req.task_type, "demo");
        assert_eq!(req.max_attempts, Some(5));
        assert_eq!(req.idempotency_key.as_deref(), Some("k"));
        assert!(serde_json::from_str::<CreateTaskRequest>(r#"{"type":"demo","bogus":1}"#).is_err());
        assert!(serde_json::from_str::<CreateTaskRequest>(r#"{"payload":1}"#).is_err());
    }

    #[test]
    fn batch_request_holds_create_requests_and_rejects_unknown_fields() {
        let batch: CreateTaskBatchRequest =
            serde_json::from_str(r#"{"tasks":[{"type":"demo"},{"type":"demo-fail","maxAttempts":2}]}"#)
                .unwrap();
        assert_eq!(batch.tasks.len(), 2);
        assert_eq!(batch.tasks[1].max_attempts, Some(2));
        assert!(serde_json::from_str::<CreateTaskBatchRequest>(r#"{"tasks":[],"bogus":1}"#).is_err());
        assert!(
            serde_json::from_str::<CreateTaskBatchRequest>(r#"{"tasks":[{"type":"demo","x":1}]}"#).is_err()
        );
        assert!(serde_json::from_str::<CreateTaskBatchRequest>(r#"{}"#).is_err());
    }

    #[test]
    fn attempts_carry_due_at_and_read_answers_without_it() {
        let old: AttemptResponse = serde_json::from_str(
            r#"{"attempt":1,"workerId":"w","startedAt":"2026-01-02T03:04:05.678Z","finishedAt":null,"outcome":null,"error":null}"#,
        )
        .unwrap();
        assert_eq!(old.due_at, None);
        let due = "2026-01-02T03:04:05.600Z".parse().unwrap();
        let json = serde_json::to_value(AttemptResponse {
            due_at: Some(due),
            ..old
        })
        .unwrap();
        assert_eq!(json["dueAt"], "2026-01-02T03:04:05.600Z");
    }
}
