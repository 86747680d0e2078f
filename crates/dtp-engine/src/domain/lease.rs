//! Leases of external workers: the token that fences one attempt (the attempt's key and 256
//! random bits, opaque to the worker), what a call on a lease finds (still held, or lost and
//! why), and the validation of the worker API's requests.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use dtp_contract::{FailRequest, LeaseLostReason, LeaseRequest};
use std::ops::RangeInclusive;
use std::time::Duration;

use super::task_result::{check_kept, JsonNotKept};
use super::AttemptOutcome;

/// Bytes of random secret in a lease token.
pub const LEASE_SECRET_BYTES: usize = 32;
const TOKEN_BYTES: usize = 8 + 8 + LEASE_SECRET_BYTES;

pub const WORKER_ID_MAX_CHARS: usize = 128;
pub const LEASE_TYPES_RANGE: RangeInclusive<usize> = 1..=50;
pub const LEASE_MAX_RANGE: RangeInclusive<i32> = 1..=1_000;
/// The longest `waitMs` the API takes (`DTP_LEASE_MAX_WAIT_MS` may lower it).
pub const MAX_WAIT_MS: i32 = 30_000;
pub const FAIL_ERROR_MAX_CHARS: usize = 4_096;
pub const RETRY_AFTER_MS_RANGE: RangeInclusive<i32> = 0..=86_400_000;

/// One attempt's lease as a worker holds it: which attempt, and the secret that proves it.
#[derive(Clone, PartialEq, Eq)]
pub struct LeaseToken {
    pub task_id: i64,
    /// The attempt's fencing token (the engine's lease token of the task).
    pub lease_token: i64,
    pub secret: [u8; LEASE_SECRET_BYTES],
}

impl std::fmt::Debug for LeaseToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "LeaseToken(task {}, lease {}, <secret>)",
            self.task_id, self.lease_token
        )
    }
}

impl LeaseToken {
    /// The token as the worker API shows it: URL-safe base64 of the three parts.
    pub fn encode(&self) -> String {
        let mut bytes = Vec::with_capacity(TOKEN_BYTES);
        bytes.extend_from_slice(&self.task_id.to_be_bytes());
        bytes.extend_from_slice(&self.lease_token.to_be_bytes());
        bytes.extend_from_slice(&self.secret);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Reads a token; `None` for anything the engine did not hand out in this form.
    pub fn decode(text: &str) -> Option<Self> {
        let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
        if bytes.len() != TOKEN_BYTES {
            return None;
        }
        let (task_id, rest) = bytes.split_at(8);
        let (lease_token, secret) = rest.split_at(8);
        Some(Self {
            task_id: i64::from_be_bytes(task_id.try_into().ok()?),
            lease_token: i64::from_be_bytes(lease_token.try_into().ok()?),
            secret: secret.try_into().ok()?,
        })
    }
}

/// What a call on a lease found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseStanding {
    /// The attempt still holds its task.
    Held,
    /// The lease is no longer its task's current one.
    Lost(LeaseLostReason),
}

/// Whether a lease still holds its task, from its attempt's recorded end (`None` while the
/// attempt is open) and whether its lease ran out. An expired lease is lost even before the
/// rescuer records it: past `leaseExpiresAt` another worker may be given the task.
pub fn lease_standing(outcome: Option<AttemptOutcome>, expired: bool) -> LeaseStanding {
    match outcome {
        None if expired => LeaseStanding::Lost(LeaseLostReason::Expired),
        None => LeaseStanding::Held,
        Some(AttemptOutcome::Canceled) => LeaseStanding::Lost(LeaseLostReason::Canceled),
        Some(AttemptOutcome::Lost) => LeaseStanding::Lost(LeaseLostReason::Expired),
        Some(AttemptOutcome::Released) => LeaseStanding::Lost(LeaseLostReason::Released),
        Some(AttemptOutcome::Succeeded | AttemptOutcome::Failed | AttemptOutcome::TimedOut) => {
            LeaseStanding::Lost(LeaseLostReason::Finished)
        }
    }
}

/// A worker API request that cannot be taken, field by field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeaseRequestError {
    #[error("workerId must be 1 to {WORKER_ID_MAX_CHARS} characters without NUL")]
    WorkerId,
    #[error("types must name {min} to {max} task types, got {0}", min = LEASE_TYPES_RANGE.start(), max = LEASE_TYPES_RANGE.end())]
    TypeCount(usize),
    #[error("types names {0:?} twice")]
    RepeatedType(String),
    #[error("max must be between {min} and {max}, got {0}", min = LEASE_MAX_RANGE.start(), max = LEASE_MAX_RANGE.end())]
    Max(i32),
    #[error("waitMs must be between 0 and {max}, got {got}")]
    WaitMs { got: i32, max: i32 },
    #[error("error must be 1 to {FAIL_ERROR_MAX_CHARS} characters without NUL")]
    FailError,
    #[error("retryAfterMs must be between {min} and {max}, got {0}", min = RETRY_AFTER_MS_RANGE.start(), max = RETRY_AFTER_MS_RANGE.end())]
    RetryAfter(i32),
    #[error("{field} {problem}")]
    NotKept {
        field: &'static str,
        problem: JsonNotKept,
    },
}

/// A validated `POST /leases`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseAsk {
    pub worker_id: String,
    pub types: Vec<String>,
    pub max: usize,
    pub wait: Duration,
}

impl LeaseAsk {
    /// Checks a lease request's shape, with waits of at most `max_wait_ms`; whether its types
    /// exist and are external is the registry's to say.
    pub fn validate(request: LeaseRequest, max_wait_ms: i32) -> Result<Self, LeaseRequestError> {
        let chars = request.worker_id.chars().count();
        if chars == 0 || chars > WORKER_ID_MAX_CHARS || request.worker_id.contains('\0') {
            return Err(LeaseRequestError::WorkerId);
        }
        if !LEASE_TYPES_RANGE.contains(&request.types.len()) {
            return Err(LeaseRequestError::TypeCount(request.types.len()));
        }
        for (i, name) in request.types.iter().enumerate() {
            if request.types[..i].contains(name) {
                return Err(LeaseRequestError::RepeatedType(name.clone()));
            }
        }
        let max = request.max.unwrap_or(1);
        if !LEASE_MAX_RANGE.contains(&max) {
            return Err(LeaseRequestError::Max(max));
        }
        let wait_ms = request.wait_ms.unwrap_or(0);
        if !(0..=max_wait_ms).contains(&wait_ms) {
            return Err(LeaseRequestError::WaitMs {
                got: wait_ms,
                max: max_wait_ms,
            });
        }
        Ok(Self {
            worker_id: request.worker_id,
            types: request.types,
            max: usize::try_from(max).unwrap_or(1),
            wait: Duration::from_millis(u64::try_from(wait_ms).unwrap_or(0)),
        })
    }
}

/// A validated `POST /leases/{token}/fail`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerFailure {
    pub error: String,
    pub retryable: bool,
    pub retry_after: Option<Duration>,
}

impl WorkerFailure {
    pub fn validate(request: FailRequest) -> Result<Self, LeaseRequestError> {
        let chars = request.error.chars().count();
        if chars == 0 || chars > FAIL_ERROR_MAX_CHARS || request.error.contains('\0') {
            return Err(LeaseRequestError::FailError);
        }
        let retry_after = match request.retry_after_ms {
            Some(ms) if !RETRY_AFTER_MS_RANGE.contains(&ms) => return Err(LeaseRequestError::RetryAfter(ms)),
            Some(ms) => Some(Duration::from_millis(u64::try_from(ms).unwrap_or(0))),
            None => None,
        };
        Ok(Self {
            error: request.error,
            retryable: request.retryable,
            retry_after,
        })
    }
}

/// Checks JSON a worker asks the engine to keep (`details`, `result`).
pub fn check_worker_json(field: &'static str, value: &serde_json::Value) -> Result<(), LeaseRequestError> {
    check_kept(value).map_err(|problem| LeaseRequestError::NotKept { field, problem })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn token() -> LeaseToken {
        LeaseToken {
            task_id: 42,
            lease_token: 7_000_000_123,
            secret: [9; LEASE_SECRET_BYTES],
        }
    }

    #[test]
    fn a_token_reads_back_as_written_and_nothing_else_reads() {
        let text = token().encode();
        assert_eq!(LeaseToken::decode(&text), Some(token()));
        assert!(
            text.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "{text}"
        );
        assert!(!format!("{:?}", token()).contains('9'), "the secret is not shown");
        let shorter = &text[..text.len() - 2];
        for bad in ["", "42", "not base64!", shorter, &format!("{text}AA"), "1"] {
            assert_eq!(LeaseToken::decode(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn every_recorded_end_names_why_the_lease_is_lost() {
        use LeaseLostReason as R;
        assert_eq!(lease_standing(None, false), LeaseStanding::Held);
        assert_eq!(lease_standing(None, true), LeaseStanding::Lost(R::Expired));
        for (outcome, reason) in [
            (AttemptOutcome::Canceled, R::Canceled),
            (AttemptOutcome::Lost, R::Expired),
            (AttemptOutcome::Released, R::Released),
            (AttemptOutcome::Succeeded, R::Finished),
            (AttemptOutcome::Failed, R::Finished),
            (AttemptOutcome::TimedOut, R::Finished),
        ] {
            for expired in [false, true] {
                assert_eq!(
                    lease_standing(Some(outcome), expired),
                    LeaseStanding::Lost(reason)
                );
            }
        }
    }

    fn ask(worker_id: &str, types: &[&str], max: Option<i32>, wait_ms: Option<i32>) -> LeaseRequest {
        LeaseRequest {
            worker_id: worker_id.into(),
            types: types.iter().map(|t| (*t).to_owned()).collect(),
            max,
            wait_ms,
        }
    }

    #[test]
    fn lease_requests_are_checked_field_by_field() {
        let ok = LeaseAsk::validate(ask("w", &["a"], None, None), MAX_WAIT_MS).unwrap();
        assert_eq!((ok.max, ok.wait), (1, Duration::ZERO));
        let edges = LeaseAsk::validate(
            ask(&"w".repeat(128), &["a"; 1], Some(1_000), Some(30_000)),
            MAX_WAIT_MS,
        )
        .unwrap();
        assert_eq!((edges.max, edges.wait), (1_000, Duration::from_secs(30)));
        let fifty: Vec<String> = (0..50).map(|n| format!("t{n}")).collect();
        let fifty: Vec<&str> = fifty.iter().map(String::as_str).collect();
        assert!(LeaseAsk::validate(ask("w", &fifty, None, None), MAX_WAIT_MS).is_ok());
        let cases = [
            (ask("", &["a"], None, None), LeaseRequestError::WorkerId),
            (
                ask(&"w".repeat(129), &["a"], None, None),
                LeaseRequestError::WorkerId,
            ),
            (ask("w\u{0}", &["a"], None, None), LeaseRequestError::WorkerId),
            (ask("w", &[], None, None), LeaseRequestError::TypeCount(0)),
            (
                ask("w", &["a", "b", "a"], None, None),
                LeaseRequestError::RepeatedType("a".into()),
            ),
            (ask("w", &["a"], Some(0), None), LeaseRequestError::Max(0)),
            (ask("w", &["a"], Some(1_001), None), LeaseRequestError::Max(1_001)),
            (
                ask("w", &["a"], None, Some(-1)),
                LeaseRequestError::WaitMs {
                    got: -1,
                    max: MAX_WAIT_MS,
                },
            ),
            (
                ask("w", &["a"], None, Some(30_001)),
                LeaseRequestError::WaitMs {
                    got: 30_001,
                    max: MAX_WAIT_MS,
                },
            ),
        ];
        for (request, error) in cases {
            assert_eq!(LeaseAsk::validate(request, MAX_WAIT_MS), Err(error));
        }
        assert_eq!(
            LeaseAsk::validate(ask("w", &["a"], None, Some(1_001)), 1_000),
            Err(LeaseRequestError::WaitMs {
                got: 1_001,
                max: 1_000
            }),
            "an operator's lower cap"
        );
        let mut many: Vec<String> = (0..51).map(|n| format!("t{n}")).collect();
        many.dedup();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(
            LeaseAsk::validate(ask("w", &many, None, None), MAX_WAIT_MS),
            Err(LeaseRequestError::TypeCount(51))
        );
    }

    fn fail(error: &str, retryable: bool, retry_after_ms: Option<i32>) -> FailRequest {
        FailRequest {
            error: error.into(),
            retryable,
            retry_after_ms,
        }
    }

    #[test]
    fn failures_are_checked_and_read() {
        let read = WorkerFailure::validate(fail("oom", true, Some(1_500))).unwrap();
        assert_eq!(read.retry_after, Some(Duration::from_millis(1_500)));
        assert!(
            !WorkerFailure::validate(fail("bad input", false, None))
                .unwrap()
                .retryable
        );
        assert_eq!(
            WorkerFailure::validate(fail("", true, None)),
            Err(LeaseRequestError::FailError)
        );
        assert_eq!(
            WorkerFailure::validate(fail(&"e".repeat(4_097), true, None)),
            Err(LeaseRequestError::FailError)
        );
        assert_eq!(
            WorkerFailure::validate(fail("x", true, Some(-1))),
            Err(LeaseRequestError::RetryAfter(-1))
        );
        assert_eq!(
            WorkerFailure::validate(fail("x", true, Some(86_400_001))),
            Err(LeaseRequestError::RetryAfter(86_400_001))
        );
    }

    #[test]
    fn kept_json_is_bounded() {
        assert_eq!(check_worker_json("details", &json!({"step": 3})), Ok(()));
        let err = check_worker_json("details", &json!("x".repeat(70_000))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "details is 70002 bytes of JSON; at most 65536 are kept"
        );
    }
}
