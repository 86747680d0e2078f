//! The engine's one HTTP error type: each variant has one status and a stable `code`.
//! Store failures are logged here, once, and answered without leaking SQL.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use service_http::http_errors::{error_answer, StoreFailure};
use service_http::page_cursor::ListingParamError;

use crate::cancellation::CancelError;
use crate::domain::{BatchError, BatchValidationError, IllegalTransition, TaskValidationError};
use crate::leasing::LeaseError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: a path or body value is malformed.
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    /// 403: the caller's token does not allow this.
    #[error("{0}")]
    Forbidden(String),
    /// 404: no such task.
    #[error("task {0} not found")]
    TaskNotFound(i64),
    /// 409: the task's state does not allow the request.
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// 410: what the request reaches back to was deleted under retention.
    #[error("{message}")]
    Gone { code: &'static str, message: String },
    /// 422: well-formed but unacceptable (unknown type, out-of-range value).
    #[error(transparent)]
    Invalid(#[from] TaskValidationError),
    /// 422: a batch that is empty, too large, or holds an unacceptable item.
    #[error(transparent)]
    InvalidBatch(#[from] BatchValidationError),
    /// 404, 409, 422: the worker API's refusals (see `LeaseError`).
    #[error(transparent)]
    Lease(LeaseError),
    /// 429: over the caller's quota.
    #[error(transparent)]
    RateLimited(#[from] service_http::rate_limit::RateLimited),
    /// 503: the database cannot be reached.
    #[error("the task database is unavailable; try again shortly")]
    Unavailable,
    /// 500: a bug or corrupt data; details are in the log only.
    #[error("internal error")]
    Internal,
}

impl ApiError {
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest { code, .. }
            | ApiError::Conflict { code, .. }
            | ApiError::Gone { code, .. } => code,
            ApiError::Forbidden(_) => "FORBIDDEN",
            ApiError::TaskNotFound(_) => "TASK_NOT_FOUND",
            ApiError::Invalid(TaskValidationError::UnknownType { .. }) => "UNKNOWN_TASK_TYPE",
            ApiError::Invalid(_) => "VALIDATION_FAILED",
            ApiError::InvalidBatch(BatchValidationError::Item {
                source: TaskValidationError::UnknownType { .. },
                ..
            }) => "UNKNOWN_TASK_TYPE",
            ApiError::InvalidBatch(_) => "VALIDATION_FAILED",
            ApiError::Lease(lease) => match lease {
                LeaseError::Invalid(_) => "VALIDATION_FAILED",
                LeaseError::NotExternal {
                    registered: false, ..
                } => "UNKNOWN_TASK_TYPE",
                LeaseError::NotExternal { registered: true, .. } => "NOT_EXTERNAL_TYPE",
                LeaseError::NotFound => "LEASE_NOT_FOUND",
                LeaseError::Lost { .. } => "LEASE_LOST",
                LeaseError::ResultNotKept(_) => "RESULT_NOT_KEPT",
                LeaseError::Store(_) => "INTERNAL",
            },
            ApiError::RateLimited(_) => "RATE_LIMITED",
            ApiError::Unavailable => "DATABASE_UNAVAILABLE",
            ApiError::Internal => "INTERNAL",
        }
    }

    /// The answer to an idempotency key that names a task other than the one submitted.
    pub fn key_reused(message: String) -> Self {
        ApiError::Conflict {
            code: "IDEMPOTENCY_KEY_REUSED",
            message,
        }
    }

    /// The answer to canceling a task in a state that cannot be canceled.
    pub fn cannot_cancel(illegal: IllegalTransition) -> Self {
        ApiError::Conflict {
            code: "TASK_NOT_CANCELABLE",
            message: format!("Cannot cancel task in state {}", illegal.from),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::TaskNotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::Gone { .. } => StatusCode::GONE,
            ApiError::Invalid(_) | ApiError::InvalidBatch(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Lease(LeaseError::NotFound) => StatusCode::NOT_FOUND,
            ApiError::Lease(LeaseError::Lost { .. }) => StatusCode::CONFLICT,
            ApiError::Lease(LeaseError::Store(_)) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Lease(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let ApiError::RateLimited(limited) = self {
            return limited.response();
        }
        if let ApiError::Lease(LeaseError::Lost { reason, message }) = self {
            return HttpResponse::Conflict().json(dtp_contract::LeaseLostBody {
                code: self.code().to_owned(),
                reason: *reason,
                message: message.clone(),
            });
        }
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

impl From<BatchError> for ApiError {
    fn from(err: BatchError) -> Self {
        match err {
            BatchError::Invalid(invalid) => ApiError::InvalidBatch(invalid),
            BatchError::KeyReused(reused) => ApiError::key_reused(reused.to_string()),
        }
    }
}

impl From<LeaseError> for ApiError {
    fn from(err: LeaseError) -> Self {
        match err {
            LeaseError::Store(store) => ApiError::from(store),
            other => ApiError::Lease(other),
        }
    }
}

impl From<CancelError> for ApiError {
    fn from(err: CancelError) -> Self {
        match err {
            CancelError::NotFound(id) => ApiError::TaskNotFound(id),
            CancelError::NotCancelable(illegal) => ApiError::cannot_cancel(illegal),
            CancelError::Busy(_) => ApiError::Conflict {
                code: "TASK_BUSY",
                message: err.to_string(),
            },
            CancelError::Store(store) => ApiError::from(store),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match StoreFailure::from(err) {
            StoreFailure::Unavailable => ApiError::Unavailable,
            StoreFailure::Internal => ApiError::Internal,
        }
    }
}

/// Parses a task id from the path: a positive integer.
pub fn parse_task_id(raw: &str) -> Result<i64, ApiError> {
    service_http::http_errors::parse_positive_id(raw).ok_or_else(|| ApiError::BadRequest {
        code: "INVALID_ID",
        message: format!(
            "task id must be a positive integer in decimal, got {:?}",
            service_http::http_errors::shown(raw)
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_variant_has_its_status_and_code() {
        let cases: Vec<(ApiError, u16, &str)> = vec![
            (parse_task_id("abc").unwrap_err(), 400, "INVALID_ID"),
            (ApiError::TaskNotFound(3), 404, "TASK_NOT_FOUND"),
            (
                ApiError::Invalid(TaskValidationError::UnknownType {
                    given: "x".into(),
                    known: vec![],
                }),
                422,
                "UNKNOWN_TASK_TYPE",
            ),
            (
                ApiError::Invalid(TaskValidationError::MaxAttemptsOutOfRange(0)),
                422,
                "VALIDATION_FAILED",
            ),
            (
                ApiError::from(BatchError::Invalid(BatchValidationError::Size(0))),
                422,
                "VALIDATION_FAILED",
            ),
            (
                ApiError::from(BatchError::Invalid(BatchValidationError::Item {
                    index: 2,
                    source: TaskValidationError::UnknownType {
                        given: "x".into(),
                        known: vec![],
                    },
                })),
                422,
                "UNKNOWN_TASK_TYPE",
            ),
            (
                ApiError::from(BatchError::KeyReused(crate::domain::KeyReusedInBatch {
                    index: 1,
                    first: 0,
                })),
                409,
                "IDEMPOTENCY_KEY_REUSED",
            ),
            (
                ApiError::from(StoreError::Unavailable("down".into())),
                503,
                "DATABASE_UNAVAILABLE",
            ),
            (
                ApiError::from(StoreError::CorruptRow("x".into())),
                500,
                "INTERNAL",
            ),
        ];
        for (err, status, code) in cases {
            assert_eq!(err.status_code().as_u16(), status, "{err:?}");
            assert_eq!(err.code(), code);
        }
    }

    #[test]
    fn ids_must_be_positive_integers() {
        assert_eq!(parse_task_id("42").unwrap(), 42);
        for bad in ["0", "-1", "1.5", "", "99999999999999999999", "12abc"] {
            assert!(parse_task_id(bad).is_err(), "{bad}");
        }
    }
}
