//! TaskPilot's one HTTP error type and the mapping of scheduler outcomes onto it.
//! The scheduler owns execution semantics: its answers are translated to stable
//! statuses (404/409/422/502/503), never to a 500 and never second-guessed.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use dtp_contract::shown;
use service_http::http_errors::{error_answer, StoreFailure};
use service_http::page_cursor::ListingParamError;

use crate::domain::WebTaskValidationError;
use crate::execution_link::{LinkError, SchedulerCall};
use crate::scheduler_client::SchedulerError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: a malformed path or query value.
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    /// 422: well-formed but unacceptable input.
    #[error(transparent)]
    Invalid(#[from] WebTaskValidationError),
    /// 404: no such web task (or one of another tenant, which is the same to the caller).
    #[error("web task {0} not found")]
    WebTaskNotFound(i64),
    /// 422: a key that cannot be made.
    #[error("{0}")]
    InvalidKey(String),
    /// 404: no such key in the caller's tenant.
    #[error("no key {0:?} in this tenant")]
    KeyNotFound(String),
    /// 410: a `Last-Event-ID` that names no event TaskPilot keeps.
    #[error(
        "Last-Event-ID {0:?} names no event TaskPilot keeps; reconnect without it and re-read the tasks"
    )]
    UnknownLastEvent(String),
    /// 409: the web task has no scheduler task yet.
    #[error("web task {0} is not bound to a scheduler task; bind it with POST /api/tasks/{0}/scheduler")]
    NotBound(i64),
    /// 409: the web task is bound with another scheduler type.
    #[error("web task {web_task_id} is already bound to scheduler task {scheduler_task_id} of type {scheduler_type:?}")]
    AlreadyBound {
        web_task_id: i64,
        scheduler_task_id: i64,
        scheduler_type: String,
    },
    /// 404: we hold a link the scheduler does not know: a cross-system inconsistency.
    #[error("web task {web_task_id} is bound to scheduler task {scheduler_task_id}, which the scheduler does not know (cross-system inconsistency)")]
    SchedulerTaskMissing {
        web_task_id: i64,
        scheduler_task_id: i64,
    },
    /// 409: the scheduler refused; its message is passed on.
    #[error("{message}")]
    SchedulerConflict { code: String, message: String },
    /// 422: the scheduler found the request invalid (e.g. unknown type); passed through.
    #[error("{message}")]
    SchedulerInvalid { code: String, message: String },
    /// 502: the scheduler failed.
    #[error("the scheduler failed: {0}")]
    SchedulerFailed(String),
    /// 503: the scheduler did not answer.
    #[error("the scheduler is unavailable: {0}")]
    SchedulerUnavailable(String),
    /// 503: our own database is unavailable.
    #[error("the TaskPilot database is unavailable; try again shortly")]
    DatabaseUnavailable,
    /// 500: a bug; details are in the log only.
    #[error("internal error")]
    Internal,
}

impl ApiError {
    /// Maps a scheduler outcome onto TaskPilot's answer.
    pub fn from_scheduler(err: SchedulerError, call: SchedulerCall) -> Self {
        match (err, call) {
            (
                SchedulerError::NotFound { .. },
                SchedulerCall::BoundTask {
                    web_task_id,
                    scheduler_task_id,
                },
            ) => {
                tracing::error!(
                    web_task.id = web_task_id,
                    task.id = scheduler_task_id,
                    "bound scheduler task is missing"
                );
                ApiError::SchedulerTaskMissing {
                    web_task_id,
                    scheduler_task_id,
                }
            }
            (
                SchedulerError::Rejected {
                    status: 422,
                    code,
                    message,
                },
                SchedulerCall::Bind,
            ) => ApiError::SchedulerInvalid { code, message },
            (SchedulerError::Rejected { code, message, .. }, _) => {
                ApiError::SchedulerConflict { code, message }
            }
            (SchedulerError::NotFound { message, .. }, SchedulerCall::Bind) => ApiError::SchedulerConflict {
                code: "SCHEDULER_REJECTED".into(),
                message,
            },
            (SchedulerError::Failed { status, message }, _) => {
                ApiError::SchedulerFailed(format!("status {status}: {message}"))
            }
            (SchedulerError::Unreachable(reason), _) => ApiError::SchedulerUnavailable(reason),
        }
    }

    pub fn code(&self) -> &str {
        match self {
            ApiError::BadRequest { code, .. } => code,
            ApiError::Invalid(WebTaskValidationError::PayloadTooLarge { .. }) => "PAYLOAD_TOO_LARGE",
            ApiError::Invalid(_) => "VALIDATION_FAILED",
            ApiError::WebTaskNotFound(_) => "WEB_TASK_NOT_FOUND",
            ApiError::InvalidKey(_) => "VALIDATION_FAILED",
            ApiError::KeyNotFound(_) => "KEY_NOT_FOUND",
            ApiError::NotBound(_) => "NOT_BOUND",
            ApiError::UnknownLastEvent(_) => "CURSOR_EXPIRED",
            ApiError::AlreadyBound { .. } => "ALREADY_BOUND",
            ApiError::SchedulerTaskMissing { .. } => "SCHEDULER_TASK_MISSING",
            ApiError::SchedulerConflict { code, .. } | ApiError::SchedulerInvalid { code, .. } => code,
            ApiError::SchedulerFailed(_) => "SCHEDULER_ERROR",
            ApiError::SchedulerUnavailable(_) => "SCHEDULER_UNAVAILABLE",
            ApiError::DatabaseUnavailable => "DATABASE_UNAVAILABLE",
            ApiError::Internal => "INTERNAL",
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Invalid(WebTaskValidationError::PayloadTooLarge { .. }) => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            ApiError::Invalid(_) | ApiError::SchedulerInvalid { .. } | ApiError::InvalidKey(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::WebTaskNotFound(_)
            | ApiError::SchedulerTaskMissing { .. }
            | ApiError::KeyNotFound(_) => StatusCode::NOT_FOUND,
            ApiError::NotBound(_) | ApiError::AlreadyBound { .. } | ApiError::SchedulerConflict { .. } => {
                StatusCode::CONFLICT
            }
            ApiError::UnknownLastEvent(_) => StatusCode::GONE,
            ApiError::SchedulerFailed(_) => StatusCode::BAD_GATEWAY,
            ApiError::SchedulerUnavailable(_) | ApiError::DatabaseUnavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        error_answer(self.status_code(), self.code(), self.to_string())
    }
}

impl From<ListingParamError> for ApiError {
    fn from(err: ListingParamError) -> Self {
        ApiError::BadRequest {
            code: err.code,
            message: err.message,
        }
    }
}

impl From<LinkError> for ApiError {
    fn from(err: LinkError) -> Self {
        match err {
            LinkError::Invalid(e) => ApiError::Invalid(e),
            LinkError::WebTaskNotFound(id) => ApiError::WebTaskNotFound(id),
            LinkError::NotBound(id) => ApiError::NotBound(id),
            LinkError::AlreadyBound {
                web_task_id,
                scheduler_task_id,
                scheduler_type,
            } => ApiError::AlreadyBound {
                web_task_id,
                scheduler_task_id,
                scheduler_type,
            },
            LinkError::Scheduler { source, call } => ApiError::from_scheduler(source, call),
            LinkError::Store(e) => e.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match StoreFailure::from(err) {
            StoreFailure::Unavailable => ApiError::DatabaseUnavailable,
            StoreFailure::Internal => ApiError::Internal,
        }
    }
}

/// Parses a web task id from the path: a positive integer.
pub fn parse_web_task_id(raw: &str) -> Result<i64, ApiError> {
    service_http::http_errors::parse_positive_id(raw).ok_or_else(|| ApiError::BadRequest {
        code: "INVALID_ID",
        message: format!(
            "task id must be a positive integer in decimal, got {:?}",
            shown(raw)
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUND: SchedulerCall = SchedulerCall::BoundTask {
        web_task_id: 1,
        scheduler_task_id: 2,
    };

    fn rejected(status: u16) -> SchedulerError {
        SchedulerError::Rejected {
            status,
            code: "DTP_CODE".into(),
            message: "from dtp".into(),
        }
    }

    fn status_of(err: SchedulerError, call: SchedulerCall) -> (u16, String, String) {
        let api = ApiError::from_scheduler(err, call);
        (api.status_code().as_u16(), api.code().to_owned(), api.to_string())
    }

    #[test]
    fn maps_every_scheduler_outcome_for_a_bound_task() {
        let missing = SchedulerError::NotFound {
            id: 2,
            message: "task 2 not found".into(),
        };
        let (status, code, message) = status_of(missing, BOUND);
        assert_eq!((status, code.as_str()), (404, "SCHEDULER_TASK_MISSING"));
        assert!(message.contains("inconsistency"));
        assert_eq!(
            status_of(rejected(409), BOUND),
            (409, "DTP_CODE".into(), "from dtp".into())
        );
        assert_eq!(status_of(rejected(422), BOUND).0, 409);
        assert_eq!(status_of(rejected(400), BOUND).0, 409);
        let failed = SchedulerError::Failed {
            status: 500,
            message: "boom".into(),
        };
        assert_eq!(status_of(failed, BOUND).0, 502);
        assert_eq!(
            status_of(SchedulerError::Unreachable("refused".into()), BOUND).0,
            503
        );
    }

    #[test]
    fn a_bind_passes_validation_errors_through() {
        assert_eq!(
            status_of(rejected(422), SchedulerCall::Bind),
            (422, "DTP_CODE".into(), "from dtp".into())
        );
        assert_eq!(status_of(rejected(409), SchedulerCall::Bind).0, 409);
        assert_eq!(
            status_of(SchedulerError::Unreachable("x".into()), SchedulerCall::Bind).0,
            503
        );
    }

    #[test]
    fn own_errors_have_their_statuses() {
        let cases: Vec<(ApiError, u16, &str)> = vec![
            (parse_web_task_id("-3").unwrap_err(), 400, "INVALID_ID"),
            (ApiError::WebTaskNotFound(1), 404, "WEB_TASK_NOT_FOUND"),
            (ApiError::NotBound(1), 409, "NOT_BOUND"),
            (
                ApiError::from(StoreError::Unavailable("down".into())),
                503,
                "DATABASE_UNAVAILABLE",
            ),
            (
                ApiError::Invalid(WebTaskValidationError::TypeLength),
                422,
                "VALIDATION_FAILED",
            ),
        ];
        for (err, status, code) in cases {
            assert_eq!((err.status_code().as_u16(), err.code()), (status, code));
        }
    }
}
