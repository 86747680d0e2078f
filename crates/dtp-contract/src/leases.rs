//! The worker API on the wire: workers outside the engine lease tasks of external types,
//! heartbeat, and complete, fail or release them. Every call on a lease carries its token;
//! a call on a lease that is no longer its task's current one is refused (`LeaseLostBody`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// `POST /leases` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "openapi", schema(example = json!({
    "workerId": "resizer-7f3a", "types": ["resize-image"], "max": 10, "waitMs": 20000
})))]
pub struct LeaseRequest {
    /// Who leases (1 to 128 characters); recorded on each attempt.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 128))]
    pub worker_id: String,
    /// External task types to lease, 1 to 50, each once.
    #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 50))]
    pub types: Vec<String>,
    /// Most leases to grant, 1 to 1000 (default 1).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::integral::option_i32"
    )]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1000))]
    pub max: Option<i32>,
    /// How long to wait for a task when none is due, 0 to 30000 ms (default 0).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::integral::option_i32"
    )]
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 30000))]
    pub wait_ms: Option<i32>,
}

/// One leased task: the worker runs it and reports through `leaseToken`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", schema(example = json!({
    "leaseToken": "AAAAAAAAACoAAAAAAAAAB8Q3b1Vd6WxvZ2Q2mV9m1bJ8mQ3hVf0xq3CqX1f8Zk7a", "leaseExpiresAt": "2026-12-01T10:00:30.122Z",
    "taskId": 42, "type": "resize-image", "attempt": 1, "maxAttempts": 3,
    "payload": {"image": "s3://bucket/cat.png"}, "createdAt": "2026-12-01T10:00:00.120Z",
    "scheduledFor": "2026-12-01T10:00:00.120Z", "heartbeatDetails": null
})))]
pub struct Lease {
    /// Opaque and unguessable; it fences this attempt.
    pub lease_token: String,
    #[serde(with = "crate::millis")]
    pub lease_expires_at: DateTime<Utc>,
    pub task_id: i64,
    #[serde(rename = "type")]
    pub task_type: String,
    /// 1-based.
    pub attempt: i32,
    pub max_attempts: i32,
    pub payload: serde_json::Value,
    #[serde(with = "crate::millis")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "crate::millis")]
    pub scheduled_for: DateTime<Utc>,
    /// The last `details` an earlier attempt of this task sent with a heartbeat, to resume from.
    pub heartbeat_details: Option<serde_json::Value>,
}

/// `POST /leases` answer; empty when nothing was due within `waitMs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct LeaseBatch {
    pub leases: Vec<Lease>,
}

/// `POST /leases/{leaseToken}/heartbeat` body: `{}` or `{"details": ...}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeartbeatRequest {
    /// Any JSON up to 64 KiB, kept and handed to the task's next attempt as `heartbeatDetails`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub details: Option<serde_json::Value>,
}

/// `POST /leases/{leaseToken}/heartbeat` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct HeartbeatResponse {
    #[serde(with = "crate::millis")]
    pub lease_expires_at: DateTime<Utc>,
}

/// `POST /leases/{leaseToken}/complete` body: `{}` or `{"result": ...}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CompleteRequest {
    /// Any JSON up to 64 KiB: the task's `result`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub result: Option<serde_json::Value>,
}

/// `POST /leases/{leaseToken}/fail` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "openapi", schema(example = json!({"error": "GPU out of memory", "retryable": true, "retryAfterMs": 30000})))]
pub struct FailRequest {
    /// What went wrong, kept as the attempt's `error` and the task's `lastError`.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 4096))]
    pub error: String,
    /// `false` fails the task at once (`NOT_RETRYABLE`); default `true`.
    #[serde(default = "retryable_by_default")]
    pub retryable: bool,
    /// Retry after this long instead of the backoff (capped at the type's `backoff_max_ms`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::integral::option_i32"
    )]
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 86_400_000))]
    pub retry_after_ms: Option<i32>,
}

fn retryable_by_default() -> bool {
    true
}

/// Why a lease is no longer its task's current one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LeaseLostReason {
    /// The task was canceled.
    Canceled,
    /// The lease ran out (and the rescuer may have given the task to another worker).
    Expired,
    /// The attempt was already completed or failed.
    Finished,
    /// The lease was released.
    Released,
}

/// The 409 answer to a call on a lost lease: `{"code": "LEASE_LOST", "reason", "message"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", schema(example = json!({
    "code": "LEASE_LOST", "reason": "EXPIRED", "message": "the lease of attempt 1 of task 42 expired; stop working on it"
})))]
pub struct LeaseLostBody {
    pub code: String,
    pub reason: LeaseLostReason,
    pub message: String,
}
