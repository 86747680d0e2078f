//! Binding a web task to the scheduler, its execution view, and cancel forwarding.
//! Every scheduler call goes through `SchedulerClient`; its outcomes are mapped by
//! `ApiError::from_scheduler`.

use actix_web::{web, HttpResponse};
use dtp_contract::{CreateTaskRequest, ErrorBody};
use serde::Deserialize;
use service_runtime::request_trace::RequestContext;

use super::error::{parse_web_task_id, ApiError, SchedulerCall};
use super::tasks::web_task_of;
use super::tasks::{ExecutionSummary, WebTaskResponse};
use super::{AppState, WebTaskIdParam};
use crate::domain::api_key::Principal;
use crate::domain::binding::{idempotency_key, Binding};
use crate::domain::web_task::validate_scheduler_type;
use crate::domain::ExecutionRecord;
use crate::domain::ExecutionView;
use crate::domain::{decide_bind, execution_view, BindDecision};
use crate::scheduler_client::SchedulerError;
use crate::store::task_executions::ExecutionRow;
use crate::store::web_tasks::{WebTaskRow, WebTaskWithExecution};

/// The archived view from a mirrored execution that had finished, if any.
fn archived_view(mirrored: Option<&ExecutionRow>) -> Result<Option<ExecutionView>, ApiError> {
    Ok(match mirrored {
        Some(row) => row.record()?.archived_view(),
        None => None,
    })
}

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

/// What a bind did: the web task as it now is, and whether this call bound it.
pub(super) struct Bound {
    pub task: WebTaskResponse,
    pub newly_bound: bool,
}

fn answer_bind(
    decision: BindDecision,
    (row, execution): (WebTaskRow, Option<ExecutionSummary>),
    newly_bound: bool,
) -> Result<Bound, ApiError> {
    match decision {
        BindDecision::Conflict(binding) => Err(ApiError::AlreadyBound {
            web_task_id: row.id,
            scheduler_task_id: binding.scheduler_task_id,
            scheduler_type: binding.scheduler_type,
        }),
        _ => Ok(Bound {
            task: WebTaskResponse::from_row(row, execution)?,
            newly_bound,
        }),
    }
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
    let bound = bind(&state, &principal, id, body.into_inner().scheduler_type, &context).await?;
    Ok(if bound.newly_bound {
        HttpResponse::Created().json(bound.task)
    } else {
        HttpResponse::Ok().json(bound.task)
    })
}

/// Binds web task `id` to a new scheduler task of type `requested`, exactly once.
pub(super) async fn bind(
    state: &AppState,
    principal: &Principal,
    id: i64,
    requested: String,
    context: &RequestContext,
) -> Result<Bound, ApiError> {
    validate_scheduler_type(&requested)?;
    let stored = web_task_of(state, principal, id).await?;
    let decision = decide_bind(stored.0.binding(), &requested);
    if decision != BindDecision::CreateSchedulerTask {
        return answer_bind(decision, summarized(stored)?, false);
    }
    let (mut row, _) = stored;

    // The payload travels in the submission and comes back out of it for the answer: a
    // large one is held once, not copied.
    let mut request = CreateTaskRequest {
        task_type: requested.clone(),
        payload: serde_json::json!({"webTaskId": row.id, "type": row.task_type, "payload": row.payload.take()}),
        max_attempts: None,
        idempotency_key: Some(idempotency_key(id)),
        run_at: None,
        timeout_ms: None,
    };
    let created = match state.scheduler.create_task(&request, context).await {
        Ok(created) => created,
        Err(err) => {
            // A concurrent bind with another type may have won at the scheduler: say so plainly.
            let current = web_task_of(state, principal, id).await?;
            let decision = decide_bind(current.0.binding(), &requested);
            if let BindDecision::Conflict(_) = decision {
                return answer_bind(decision, summarized(current)?, false);
            }
            return Err(ApiError::from_scheduler(err, SchedulerCall::Bind));
        }
    };
    tracing::info!(
        web_task.id = id,
        task.id = created.task.id,
        newly_created = created.newly_created,
        "scheduler task ready"
    );
    if state.crash_after_scheduler_create {
        tracing::error!(
            web_task.id = id,
            "fault injection: exiting between the scheduler's answer and our commit"
        );
        std::process::exit(86);
    }
    if created.task.task_type != requested {
        return Err(ApiError::AlreadyBound {
            web_task_id: id,
            scheduler_task_id: created.task.id,
            scheduler_type: created.task.task_type,
        });
    }

    let binding = Binding {
        scheduler_task_id: created.task.id,
        scheduler_type: requested.clone(),
    };
    let execution = ExecutionRecord::of_task(&created.task);
    let summary = ExecutionSummary::of_record(&execution, chrono::Utc::now());
    let bound = state.web_tasks.bind_if_unbound(id, binding, execution).await?;
    match bound {
        Some(written) => {
            tracing::info!(web_task.id = id, task.id = created.task.id, "web task bound");
            row.payload = request.payload["payload"].take();
            answer_bind(
                BindDecision::CreateSchedulerTask,
                (row.with_binding(written), Some(summary)),
                true,
            )
        }
        // A concurrent bind committed first; answer from what it wrote.
        None => {
            let current = web_task_of(state, principal, id).await?;
            let decision = decide_bind(current.0.binding(), &requested);
            answer_bind(decision, summarized(current)?, false)
        }
    }
}

fn summarized(
    (row, execution): WebTaskWithExecution,
) -> Result<(WebTaskRow, Option<ExecutionSummary>), ApiError> {
    let execution = execution.as_ref().map(ExecutionSummary::of_row).transpose()?;
    Ok((row, execution))
}

/// Loads a web task, its binding and its mirrored execution, or answers 404/409.
async fn bound_task(
    state: &AppState,
    principal: &Principal,
    id: i64,
) -> Result<(Binding, Option<ExecutionRow>), ApiError> {
    let (row, execution) = web_task_of(state, principal, id).await?;
    let binding = row.binding().ok_or(ApiError::NotBound(id))?;
    Ok((binding, execution))
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
    let view = execution_of(&state, &principal, id, with_attempts, &context).await?;
    Ok(HttpResponse::Ok().json(view))
}

/// The scheduler's view of web task `id`'s execution (with its attempts if asked), or the
/// archived copy once the scheduler has deleted the finished task.
pub(super) async fn execution_of(
    state: &AppState,
    principal: &Principal,
    id: i64,
    with_attempts: bool,
    context: &RequestContext,
) -> Result<ExecutionView, ApiError> {
    let (binding, mirrored) = bound_task(state, principal, id).await?;
    let call = SchedulerCall::BoundTask {
        web_task_id: id,
        scheduler_task_id: binding.scheduler_task_id,
    };
    let scheduler_call = |e| ApiError::from_scheduler(e, call);
    let task = match state.scheduler.get_task(binding.scheduler_task_id, context).await {
        Ok(task) => task,
        // Deleted under retention once finished: TaskPilot's last copy answers instead.
        Err(SchedulerError::NotFound { .. }) if let Some(archived) = archived_view(mirrored.as_ref())? => {
            return Ok(archived);
        }
        Err(e) => return Err(scheduler_call(e)),
    };
    let mut view = execution_view(&task);
    if with_attempts {
        // Read after the task, so that every attempt the task counts is in the list, closed
        // if the task has moved on from it (an attempt ends in the same write as its task).
        let attempts = state
            .scheduler
            .get_attempts(binding.scheduler_task_id, context)
            .await
            .map_err(scheduler_call)?;
        view = view.with_attempts(&attempts);
    }
    Ok(view)
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
    cancel(&state, &principal, id, &context).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Forwards the cancel of web task `id`'s execution; `Ok` once it is CANCELED.
pub(super) async fn cancel(
    state: &AppState,
    principal: &Principal,
    id: i64,
    context: &RequestContext,
) -> Result<(), ApiError> {
    let (binding, _) = bound_task(state, principal, id).await?;
    let call = SchedulerCall::BoundTask {
        web_task_id: id,
        scheduler_task_id: binding.scheduler_task_id,
    };
    state
        .scheduler
        .cancel_task(binding.scheduler_task_id, context)
        .await
        .map_err(|e| ApiError::from_scheduler(e, call))?;
    tracing::info!(
        web_task.id = id,
        task.id = binding.scheduler_task_id,
        "execution canceled"
    );
    Ok(())
}
