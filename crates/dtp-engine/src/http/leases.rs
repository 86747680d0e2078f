//! `/leases`: the worker API. Workers lease due tasks of external types (long-polling for
//! them), heartbeat, and complete, fail or release each lease by its token.

use actix_web::{web, HttpRequest, HttpResponse};
use dtp_contract::{
    CompleteRequest, ErrorBody, FailRequest, HeartbeatRequest, HeartbeatResponse, LeaseBatch, LeaseLostBody,
    LeaseRequest,
};

use super::error::ApiError;
use super::AppState;
use crate::domain::access::Caller;
use service_http::connections::ClientSocket;

#[utoipa::path(
    post, path = "/leases", tag = "workers",
    request_body = LeaseRequest,
    responses(
        (status = 200, description = "The leases granted, empty when nothing was due within `waitMs`", body = LeaseBatch),
        (status = 400, description = "Malformed JSON, missing field or wrong type", body = ErrorBody),
        (status = 401, description = "No valid service token (UNAUTHORIZED)", body = ErrorBody),
        (status = 403, description = "The token may not use the worker API, or not lease one of the types \
            (FORBIDDEN)", body = ErrorBody),
        (status = 422, description = "A field out of range (VALIDATION_FAILED), a type that is not registered \
            (UNKNOWN_TASK_TYPE) or not external (NOT_EXTERNAL_TYPE)", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
/// `POST /leases`: up to `max` due tasks of the named external types, each with its lease;
/// with none due, waits up to `waitMs`, woken at once when a task arrives.
pub async fn lease(
    state: web::Data<AppState>,
    caller: Caller,
    request: HttpRequest,
    body: web::Json<LeaseRequest>,
) -> Result<HttpResponse, ApiError> {
    if let Some(refused) = body.types.iter().find(|t| !caller.may_lease(t)) {
        let shown: String = refused.chars().take(100).collect();
        return Err(ApiError::Forbidden(format!(
            "this worker token may not lease {shown:?}"
        )));
    }
    let socket = request.conn_data::<ClientSocket>();
    let client_waits = || socket.is_none_or(ClientSocket::is_open);
    let leases = state.leases.lease(body.into_inner(), client_waits).await?;
    Ok(HttpResponse::Ok().json(LeaseBatch { leases }))
}

#[utoipa::path(
    post, path = "/leases/{leaseToken}/heartbeat", tag = "workers",
    params(("leaseToken" = String, Path, description = "The lease's token, as granted")),
    request_body = HeartbeatRequest,
    responses(
        (status = 200, description = "The lease is extended", body = HeartbeatResponse),
        (status = 400, description = "Malformed JSON or an unknown field", body = ErrorBody),
        (status = 404, description = "No such lease (LEASE_NOT_FOUND)", body = ErrorBody),
        (status = 409, description = "The lease is lost (LEASE_LOST): stop working on the task", body = LeaseLostBody),
        (status = 422, description = "details over 64 KiB or not storable", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
/// `POST /leases/{leaseToken}/heartbeat`: extends the lease; `details` are kept for the
/// task's next attempt.
pub async fn heartbeat(
    state: web::Data<AppState>,
    token: web::Path<String>,
    body: web::Json<HeartbeatRequest>,
) -> Result<HttpResponse, ApiError> {
    let lease_expires_at = state.leases.heartbeat(&token, body.into_inner()).await?;
    Ok(HttpResponse::Ok().json(HeartbeatResponse { lease_expires_at }))
}

#[utoipa::path(
    post, path = "/leases/{leaseToken}/complete", tag = "workers",
    params(("leaseToken" = String, Path, description = "The lease's token, as granted")),
    request_body = CompleteRequest,
    responses(
        (status = 204, description = "The task SUCCEEDED with the result"),
        (status = 400, description = "Malformed JSON or an unknown field", body = ErrorBody),
        (status = 404, description = "No such lease (LEASE_NOT_FOUND)", body = ErrorBody),
        (status = 409, description = "The lease is lost (LEASE_LOST); nothing changed", body = LeaseLostBody),
        (status = 422, description = "A result over 64 KiB or not storable (RESULT_NOT_KEPT): the task failed as \
            not retryable", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
/// `POST /leases/{leaseToken}/complete`.
pub async fn complete(
    state: web::Data<AppState>,
    token: web::Path<String>,
    body: web::Json<CompleteRequest>,
) -> Result<HttpResponse, ApiError> {
    state.leases.complete(&token, body.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    post, path = "/leases/{leaseToken}/fail", tag = "workers",
    params(("leaseToken" = String, Path, description = "The lease's token, as granted")),
    request_body = FailRequest,
    responses(
        (status = 204, description = "The attempt failed: retried, or the task FAILED"),
        (status = 400, description = "Malformed JSON, missing field or wrong type", body = ErrorBody),
        (status = 404, description = "No such lease (LEASE_NOT_FOUND)", body = ErrorBody),
        (status = 409, description = "The lease is lost (LEASE_LOST); nothing changed", body = LeaseLostBody),
        (status = 422, description = "error empty or too long, or retryAfterMs out of range", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
/// `POST /leases/{leaseToken}/fail`.
pub async fn fail(
    state: web::Data<AppState>,
    token: web::Path<String>,
    body: web::Json<FailRequest>,
) -> Result<HttpResponse, ApiError> {
    state.leases.fail(&token, body.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    post, path = "/leases/{leaseToken}/release", tag = "workers",
    params(("leaseToken" = String, Path, description = "The lease's token, as granted")),
    responses(
        (status = 204, description = "The task is PENDING again, the attempt not counted"),
        (status = 404, description = "No such lease (LEASE_NOT_FOUND)", body = ErrorBody),
        (status = 409, description = "The lease is lost (LEASE_LOST); nothing changed", body = LeaseLostBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
/// `POST /leases/{leaseToken}/release`: a worker gives a task back (it is shutting down).
pub async fn release(state: web::Data<AppState>, token: web::Path<String>) -> Result<HttpResponse, ApiError> {
    state.leases.release(&token).await?;
    Ok(HttpResponse::NoContent().finish())
}
