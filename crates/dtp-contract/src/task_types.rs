//! Task types on the wire: `GET /task-types` (the types an engine accepts, with the
//! settings that apply to tasks that do not choose their own; secrets never appear), and the
//! body the engine sends an HTTP target for each attempt.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// How tasks of a type are run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum TaskTypeKind {
    /// Code compiled into the engine (a Rust handler).
    Handler,
    /// The engine sends each attempt to an HTTP endpoint.
    Http,
    /// Workers outside the engine lease the tasks over HTTP.
    External,
}

/// One registered task type and its effective settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", schema(example = json!({
    "name": "send-email", "kind": "http", "maxAttempts": 5, "timeoutMs": 10000,
    "backoffBaseMs": 1000, "backoffMaxMs": 300000, "concurrency": 20, "leaseMs": null,
    "http": {"url": "http://127.0.0.1:9000/hooks/send-email", "method": "POST",
             "headers": {"X-Env": "prod", "Authorization": "[redacted]"}, "signingSecretEnv": "SEND_EMAIL_SECRET"}
})))]
pub struct TaskTypeInfo {
    pub name: String,
    pub kind: TaskTypeKind,
    pub max_attempts: i32,
    pub timeout_ms: i32,
    /// The longest `timeoutMs` a submission of this type may ask for.
    pub max_timeout_ms: i32,
    pub backoff_base_ms: u64,
    pub backoff_max_ms: u64,
    /// Most attempts of this type running at once across every engine; null when unlimited.
    pub concurrency: Option<u32>,
    /// How long a worker's lease lasts without a heartbeat (external types only).
    pub lease_ms: Option<u64>,
    /// Where attempts are sent (HTTP types only).
    pub http: Option<HttpTargetInfo>,
}

/// The target of an HTTP type, as configured; header values read from the environment
/// are shown as `[redacted]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct HttpTargetInfo {
    pub url: String,
    /// `POST` or `PUT`.
    pub method: String,
    pub headers: BTreeMap<String, String>,
    /// The environment variable holding the signing secret; null when requests are unsigned.
    pub signing_secret_env: Option<String>,
}

/// `GET /task-types` answer, sorted by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct TaskTypeList {
    pub types: Vec<TaskTypeInfo>,
}

/// The body of each request the engine sends to an HTTP target (one per attempt).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpDelivery {
    pub task_id: i64,
    #[serde(rename = "type")]
    pub task_type: String,
    /// 1-based.
    pub attempt: i32,
    pub max_attempts: i32,
    pub payload: serde_json::Value,
    #[serde(with = "crate::millis")]
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// When this attempt fell due.
    #[serde(with = "crate::millis")]
    pub scheduled_for: chrono::DateTime<chrono::Utc>,
}
