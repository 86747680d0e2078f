//! Validation of a task submission: turns a `CreateTaskRequest` into a `NewTask` the
//! store can insert, or says precisely which field is unacceptable.

use chrono::{DateTime, Datelike, SubsecRound, Utc};
use dtp_contract::CreateTaskRequest;
use std::ops::RangeInclusive;

use super::task_type::TaskQueue;

pub const DEFAULT_MAX_ATTEMPTS: i32 = 3;
pub const MAX_ATTEMPTS_RANGE: RangeInclusive<i32> = 1..=100;
pub const IDEMPOTENCY_KEY_MAX_CHARS: usize = 255;
/// One day: an attempt may not be given longer than this.
pub const TIMEOUT_MS_RANGE: RangeInclusive<i32> = 1..=86_400_000;
/// The years a `runAt` may fall in.
pub const RUN_AT_YEARS: RangeInclusive<i32> = 1970..=9999;

/// A validated task, ready to be inserted.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTask {
    pub task_type: String,
    pub payload: serde_json::Value,
    pub max_attempts: i32,
    pub idempotency_key: Option<String>,
    /// Whose idempotency key it is: the submitting caller's token name (`""` without
    /// authentication), so that one caller's keys never meet another's.
    pub idempotency_scope: String,
    /// As asked, to microseconds (what Postgres keeps); a time in the past means now.
    pub run_at: Option<DateTime<Utc>>,
    pub timeout_ms: i32,
    /// Where the task waits to be claimed, from its type's settings.
    pub queue: TaskQueue,
}

/// What an existing task was submitted as: what a repeated idempotency key must ask for
/// again, field by field, to be answered by that task.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SubmittedAs<'a> {
    pub task_type: &'a str,
    pub payload: &'a serde_json::Value,
    pub max_attempts: i32,
    pub timeout_ms: i32,
    pub run_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaskValidationError {
    #[error("unknown task type {given:?}; known types: {}", known.join(", "))]
    UnknownType { given: String, known: Vec<String> },
    #[error("maxAttempts must be between {min} and {max}, got {0}", min = MAX_ATTEMPTS_RANGE.start(), max = MAX_ATTEMPTS_RANGE.end())]
    MaxAttemptsOutOfRange(i32),
    #[error("idempotencyKey must be 1 to {IDEMPOTENCY_KEY_MAX_CHARS} characters")]
    IdempotencyKeyLength,
    #[error("timeoutMs must be between {min} and {max}, got {0}", min = TIMEOUT_MS_RANGE.start(), max = TIMEOUT_MS_RANGE.end())]
    TimeoutOutOfRange(i32),
    #[error("timeoutMs of a {task_type} task must be at most {max}, got {got}")]
    TimeoutAboveTypeMax { task_type: String, max: i32, got: i32 },
    #[error("payload is not what {task_type} takes: {reason}")]
    PayloadRefused { task_type: String, reason: String },
    #[error("runAt must fall in the years {min} to {max}", min = RUN_AT_YEARS.start(), max = RUN_AT_YEARS.end())]
    RunAtOutOfRange,
    /// Postgres `text` cannot store U+0000.
    #[error("{field} must not contain the NUL character (\\u0000)")]
    ContainsNul { field: &'static str },
    #[error("{field} {reason}")]
    Unstorable {
        field: &'static str,
        reason: dtp_contract::UnstorableJson,
    },
}

/// What a submission takes from its type when it does not say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubmissionDefaults {
    pub max_attempts: i32,
    pub timeout_ms: i32,
    /// The longest `timeoutMs` the type allows.
    pub max_timeout_ms: i32,
    pub queue: TaskQueue,
}

/// What the validator needs to know about task types.
pub trait TaskTypes {
    /// The defaults of `task_type`, or `None` when the type is unknown.
    fn submission_defaults(&self, task_type: &str) -> Option<SubmissionDefaults>;
    /// Every known type name, sorted.
    fn names(&self) -> Vec<String>;
    /// Why `payload` is not what a known `task_type` takes, if it is not.
    fn check_payload(&self, task_type: &str, payload: &serde_json::Value) -> Result<(), String>;
}

impl NewTask {
    pub fn validate(request: CreateTaskRequest, types: &dyn TaskTypes) -> Result<Self, TaskValidationError> {
        let Some(defaults) = types.submission_defaults(&request.task_type) else {
            return Err(TaskValidationError::UnknownType {
                given: dtp_contract::shown(&request.task_type),
                known: types.names(),
            });
        };
        let max_attempts = request.max_attempts.unwrap_or(defaults.max_attempts);
        if !MAX_ATTEMPTS_RANGE.contains(&max_attempts) {
            return Err(TaskValidationError::MaxAttemptsOutOfRange(max_attempts));
        }
        if let Some(key) = &request.idempotency_key {
            let chars = key.chars().count();
            if chars == 0 || chars > IDEMPOTENCY_KEY_MAX_CHARS {
                return Err(TaskValidationError::IdempotencyKeyLength);
            }
            if key.contains('\0') {
                return Err(TaskValidationError::ContainsNul {
                    field: "idempotencyKey",
                });
            }
        }
        dtp_contract::check_storable(&request.payload).map_err(|reason| TaskValidationError::Unstorable {
            field: "payload",
            reason,
        })?;
        let timeout_ms = request.timeout_ms.unwrap_or(defaults.timeout_ms);
        if !TIMEOUT_MS_RANGE.contains(&timeout_ms) {
            return Err(TaskValidationError::TimeoutOutOfRange(timeout_ms));
        }
        if timeout_ms > defaults.max_timeout_ms {
            return Err(TaskValidationError::TimeoutAboveTypeMax {
                task_type: request.task_type,
                max: defaults.max_timeout_ms,
                got: timeout_ms,
            });
        }
        types
            .check_payload(&request.task_type, &request.payload)
            .map_err(|reason| TaskValidationError::PayloadRefused {
                task_type: request.task_type.clone(),
                reason: dtp_contract::shown(&reason),
            })?;
        let run_at = match request.run_at {
            Some(at) if !RUN_AT_YEARS.contains(&at.year()) => {
                return Err(TaskValidationError::RunAtOutOfRange)
            }
            at => at.map(|at| at.trunc_subsecs(6)),
        };
        Ok(NewTask {
            task_type: request.task_type,
            payload: request.payload,
            max_attempts,
            idempotency_key: request.idempotency_key,
            idempotency_scope: String::new(),
            run_at,
            timeout_ms,
            queue: defaults.queue,
        })
    }

    /// The same task, its idempotency key being `scope`'s.
    pub fn scoped_to(mut self, scope: &str) -> Self {
        self.idempotency_scope = scope.to_owned();
        self
    }

    /// What this submission asks for.
    pub fn submitted_as(&self) -> SubmittedAs<'_> {
        SubmittedAs {
            task_type: &self.task_type,
            payload: &self.payload,
            max_attempts: self.max_attempts,
            timeout_ms: self.timeout_ms,
            run_at: self.run_at,
        }
    }

    /// Whether an existing task is what this submission asks for, every field compared (a
    /// missing `maxAttempts` or `timeoutMs` compares as its default), so that a repeated
    /// idempotency key may return it.
    pub fn matches(&self, existing: &SubmittedAs<'_>) -> bool {
        self.submitted_as() == *existing
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    /// Task types with only `demo` (5 s timeout) and `limited` (2 attempts, its own
    /// queue), for the validators' tests.
    pub(crate) struct Demo;
    impl TaskTypes for Demo {
        fn submission_defaults(&self, task_type: &str) -> Option<SubmissionDefaults> {
            match task_type {
                "demo" => Some(SubmissionDefaults {
                    max_attempts: DEFAULT_MAX_ATTEMPTS,
                    timeout_ms: 5_000,
                    max_timeout_ms: *TIMEOUT_MS_RANGE.end(),
                    queue: TaskQueue::Shared,
                }),
                "limited" => Some(SubmissionDefaults {
                    max_attempts: 2,
                    timeout_ms: 7_000,
                    max_timeout_ms: 10_000,
                    queue: TaskQueue::OwnType,
                }),
                _ => None,
            }
        }
        fn names(&self) -> Vec<String> {
            vec!["demo".into(), "limited".into()]
        }
        fn check_payload(&self, _: &str, payload: &serde_json::Value) -> Result<(), String> {
            match payload.get("refuse") {
                Some(reason) => Err(reason.to_string()),
                None => Ok(()),
            }
        }
    }

    fn request(task_type: &str) -> CreateTaskRequest {
        CreateTaskRequest {
            task_type: task_type.into(),
            payload: json!({"a": 1}),
            max_attempts: None,
            idempotency_key: None,
            run_at: None,
            timeout_ms: None,
        }
    }

    #[test]
    fn fills_defaults() {
        let task = NewTask::validate(request("demo"), &Demo).unwrap();
        assert_eq!(task.max_attempts, DEFAULT_MAX_ATTEMPTS);
        assert_eq!(task.timeout_ms, 5_000);
        let same = task.submitted_as();
        assert!(task.matches(&same));
        let payload = json!({"a": 2});
        for other in [
            SubmittedAs {
                task_type: "limited",
                ..same
            },
            SubmittedAs {
                payload: &payload,
                ..same
            },
            SubmittedAs {
                max_attempts: 4,
                ..same
            },
            SubmittedAs {
                timeout_ms: 1,
                ..same
            },
            SubmittedAs {
                run_at: Some(Utc::now()),
                ..same
            },
        ] {
            assert!(!task.matches(&other), "{other:?}");
        }
        assert_eq!(task.scoped_to("taskpilot").idempotency_scope, "taskpilot");
    }

    #[test]
    fn the_type_s_defaults_apply_unless_the_task_sets_its_own() {
        let task = NewTask::validate(request("limited"), &Demo).unwrap();
        assert_eq!((task.max_attempts, task.timeout_ms), (2, 7_000));
        assert_eq!(task.queue, TaskQueue::OwnType);
        let mut own = request("limited");
        own.max_attempts = Some(9);
        own.timeout_ms = Some(100);
        let task = NewTask::validate(own, &Demo).unwrap();
        assert_eq!((task.max_attempts, task.timeout_ms), (9, 100));
        assert_eq!(
            NewTask::validate(request("demo"), &Demo).unwrap().queue,
            TaskQueue::Shared
        );
    }

    #[test]
    fn names_the_known_types_for_an_unknown_one() {
        let err = NewTask::validate(request("nope"), &Demo).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown task type \"nope\"; known types: demo, limited"
        );
    }

    #[test]
    fn checks_ranges() {
        for (max, ok) in [(0, false), (1, true), (100, true), (101, false), (-1, false)] {
            let mut r = request("demo");
            r.max_attempts = Some(max);
            assert_eq!(NewTask::validate(r, &Demo).is_ok(), ok, "maxAttempts {max}");
        }
        for (key, ok) in [
            (String::new(), false),
            ("k".repeat(255), true),
            ("k".repeat(256), false),
        ] {
            let mut r = request("demo");
            r.idempotency_key = Some(key.clone());
            assert_eq!(
                NewTask::validate(r, &Demo).is_ok(),
                ok,
                "key of {} chars",
                key.len()
            );
        }
        for (payload, ok) in [
            (json!({"a": "x\u{0}"}), false),
            (json!({"a\u{0}": 1}), false),
            (json!([[{"deep": ["\u{0}"]}]]), false),
            (json!({"a": ["x", 1, null, {"b": "y"}]}), true),
            (json!({"n": 1.797_693_134_862_315_7e308}), false),
            (json!({"n": -9.9e307}), true),
        ] {
            let mut r = request("demo");
            r.payload = payload.clone();
            assert_eq!(NewTask::validate(r, &Demo).is_ok(), ok, "payload {payload}");
        }
        let mut r = request("demo");
        r.idempotency_key = Some("k\u{0}".into());
        assert_eq!(
            NewTask::validate(r, &Demo),
            Err(TaskValidationError::ContainsNul {
                field: "idempotencyKey"
            })
        );
        for (timeout, ok) in [(0, false), (1, true), (86_400_000, true), (86_400_001, false)] {
            let mut r = request("demo");
            r.timeout_ms = Some(timeout);
            assert_eq!(NewTask::validate(r, &Demo).is_ok(), ok, "timeoutMs {timeout}");
        }
        for (at, ok) in [
            ("1969-12-31T23:59:59Z", false),
            ("1970-01-01T00:00:00Z", true),
            ("9999-12-31T23:59:59.999Z", true),
            ("-4714-01-01T00:00:00Z", false),
        ] {
            let mut r = request("demo");
            r.run_at = Some(at.parse().unwrap());
            assert_eq!(NewTask::validate(r, &Demo).is_ok(), ok, "runAt {at}");
        }
        let mut r = request("demo");
        r.run_at = Some("2030-01-01T00:00:00.123456789Z".parse().unwrap());
        let kept = NewTask::validate(r, &Demo).unwrap().run_at.unwrap();
        assert_eq!(
            kept.to_rfc3339(),
            "2030-01-01T00:00:00.123456+00:00",
            "to microseconds"
        );
    }
}
