//! The routes of a web task's link to the scheduler: bind, execution view, cancel. Each
//! parses, calls its use case in `execution_link`, and answers; a `LinkError` is mapped by
//! `ApiError::from`.

use actix_web::{web, HttpResponse};
use dtp_contract::ErrorBody;
use serde::Deserialize;
use service_http::request_trace::RequestContext;

use super::error::{parse_web_task_id, ApiError};
use super::tasks::{ExecutionSummary, WebTaskResponse};
use super::{AppState, WebTaskIdParam};
use crate::domain::api_key::Principal;
use crate::domain::ExecutionView;
use crate::execution_link::Bound;

/// `POST /api/tasks/{id}/scheduler` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"schedulerType": "demo"}))]
pub struct BindRequest {
    /// A task type the scheduler runs (`demo`, `demo-slow`, `demo-fail` out of the box); the
    /// scheduler decides which it knows and answers 422 for others.
    #[schema(min_length = 1, max_length = 100, pattern = r"^[^\u0000]*\S[^\u0000]*$")]
    scheduler_type: String,
}

#[utoipa::path(
    post, path = "/api/tasks/{id}/scheduler", tag = "execution",
    params(WebTaskIdParam),
    request_body = BindRequest,
    responses(
        (status = 201, description = "This call bound the web task to a new scheduler task", body = WebTaskResponse),
        (status = 200, description = "Already bound with this scheduler type; nothing changed", body = WebTaskResponse),
        (status = 400, description = "Invalid id, malformed JSON or unknown field", body = ErrorBody),
        (status = 404, description = "No such web task (WEB_TASK_NOT_FOUND)", body = ErrorBody),
        (status = 409, description = "Already bound with another scheduler type (ALREADY_BOUND), or the \
            scheduler refused", body = ErrorBody,
            example = json!({"code": "ALREADY_BOUND", "message": "web task 7 is already bound to scheduler task 41 of type \"demo\""})),
        (status = 413, description = "Body over the size limit", body = ErrorBody),
        (status = 422, description = "schedulerType empty or too long (VALIDATION_FAILED), or a type the \
            scheduler does not know (its code, e.g. UNKNOWN_TASK_TYPE)", body = ErrorBody),
        (status = 502, description = "The scheduler failed (SCHEDULER_ERROR)", body = ErrorBody),
        (status = 503, description = "The scheduler (SCHEDULER_UNAVAILABLE) or TaskPilot's database \
            (DATABASE_UNAVAILABLE) is unavailable", body = ErrorBody),
    )
)]
/// `POST /api/tasks/{id}/scheduler`: 201 when this call bound the task, 200 when it was
/// already bound with the same type, 409 when bound with another.
///
/// Exactly once without a lock held across the scheduler call: the scheduler task is
/// created under an idempotency key derived from the web task id, and the link is
/// written only if the web task is still unbound.
pub async fn bind_to_scheduler(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
    body: web::Json<BindRequest>,
    context: RequestContext,
) -> Result<HttpResponse, ApiError> {
    let id = parse_web_task_id(&id)?;
    let bound = state
        .links
        .bind(&principal.tenant, id, body.into_inner().scheduler_type, &context)
        .await?;
    let created = bound.newly_bound;
    let task = bound_response(bound)?;
    Ok(if created {
        HttpResponse::Created().json(task)
    } else {
        HttpResponse::Ok().json(task)
    })
}

/// A bound web task on the wire.
fn bound_response(bound: Bound) -> Result<WebTaskResponse, ApiError> {
    let execution = bound
        .execution
        .map(|(record, synced_at)| ExecutionSummary::of_record(&record, synced_at));
    Ok(WebTaskResponse::from_row(bound.task, execution)?)
}

/// `GET /api/tasks/{id}/execution` query; unknown parameters are refused.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecutionQuery {
    include: Option<String>,
}

/// What `include` may name besides the task itself.
const INCLUDE_ATTEMPTS: &str = "attempts";

impl ExecutionQuery {
    /// Whether the attempt history is asked for, or the 400 for an unknown `include`.
    fn wants_attempts(&self) -> Result<bool, ApiError> {
        match self.include.as_deref() {
            None => Ok(false),
            Some(INCLUDE_ATTEMPTS) => Ok(true),
            Some(other) => Err(ApiError::BadRequest {
                code: "INVALID_INCLUDE",
                message: format!("include must be {INCLUDE_ATTEMPTS:?}, got {other:?}"),
            }),
        }
    }
}

#[utoipa::path(
    get, path = "/api/tasks/{id}/execution", tag = "execution",
    params(
        WebTaskIdParam,
        ("include" = Option<String>, Query, description = "`attempts` to add the attempt history",
            pattern = "^attempts$"),
    ),
    responses(
        (status = 200, description = "The scheduler's view of the bound task, with derived latencies",
            body = ExecutionView),
        (status = 400, description = "Invalid id, unknown parameter or include value", body = ErrorBody),
        (status = 404, description = "No such web task (WEB_TASK_NOT_FOUND), or the scheduler does not \
            know the bound task (SCHEDULER_TASK_MISSING)", body = ErrorBody),
        (status = 409, description = "The web task is not bound yet (NOT_BOUND)", body = ErrorBody),
        (status = 502, description = "The scheduler failed (SCHEDULER_ERROR)", body = ErrorBody),
        (status = 503, description = "The scheduler or TaskPilot's database is unavailable", body = ErrorBody),
    )
)]
/// `GET /api/tasks/{id}/execution[?include=attempts]`: the scheduler's view of the bound
/// task, with latencies; with `include=attempts`, also every attempt and its latencies.
pub async fn get_execution(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
    query: web::Query<ExecutionQuery>,
    context: RequestContext,
) -> Result<HttpResponse, ApiError> {
    let id = parse_web_task_id(&id)?;
    let with_attempts = query.wants_attempts()?;
    let view = state
        .links
        .execution(&principal.tenant, id, with_attempts, &context)
        .await?;
    Ok(HttpResponse::Ok().json(view))
}

#[utoipa::path(
    put, path = "/api/tasks/{id}/execution/cancel", tag = "execution",
    params(WebTaskIdParam),
    responses(
        (status = 204, description = "The scheduler task is CANCELED (also when it already was)"),
        (status = 400, description = "Invalid id", body = ErrorBody),
        (status = 404, description = "No such web task, or the scheduler does not know the bound task", body = ErrorBody),
        (status = 409, description = "Not bound yet (NOT_BOUND), or the scheduler refused because the task \
            already finished (TASK_NOT_CANCELABLE)", body = ErrorBody,
            example = json!({"code": "TASK_NOT_CANCELABLE", "message": "Cannot cancel task in state SUCCEEDED"})),
        (status = 502, description = "The scheduler failed (SCHEDULER_ERROR)", body = ErrorBody),
        (status = 503, description = "The scheduler or TaskPilot's database is unavailable", body = ErrorBody),
    )
)]
/// `PUT /api/tasks/{id}/execution/cancel`: forwards the cancel; 204 once CANCELED.
pub async fn cancel_execution(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
    context: RequestContext,
) -> Result<HttpResponse, ApiError> {
    let id = parse_web_task_id(&id)?;
    state.links.cancel(&principal.tenant, id, &context).await?;
    Ok(HttpResponse::NoContent().finish())
}
