//! `/tasks`: submit, list, read, cancel, and read the attempt history of tasks.

use actix_web::{web, HttpResponse};
use dtp_contract::{AttemptResponse, CreateTaskRequest, ErrorBody, TaskPage, TaskResponse, TaskStatus};
use serde::Deserialize;
use service_runtime::page_cursor::{check_type_filter, PageRequest};

use super::error::{parse_task_id, ApiError};
use super::AppState;
use crate::domain::{transition, NewTask, TaskEvent};
use crate::store::tasks::{self as task_store, Inserted, TaskFilter};
use crate::store::{self, attempts as attempt_store};

/// How often a cancel re-reads a task whose state changed under it before giving up.
const CANCEL_RACE_RETRIES: usize = 5;

#[utoipa::path(
    post, path = "/tasks", tag = "tasks",
    request_body = CreateTaskRequest,
    responses(
        (status = 201, description = "Task accepted", body = TaskResponse),
        (status = 200, description = "The idempotency key already names this task", body = TaskResponse),
        (status = 400, description = "Malformed JSON, missing field or wrong type", body = ErrorBody),
        (status = 409, description = "The idempotency key names a different task (IDEMPOTENCY_KEY_REUSED)", body = ErrorBody),
        (status = 413, description = "Body over the size limit", body = ErrorBody),
        (status = 422, description = "Unknown type or value out of range", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
/// `POST /tasks`: 201 with the new task, or 200 with the task an idempotency key already names.
pub async fn create_task(
    state: web::Data<AppState>,
    body: web::Json<CreateTaskRequest>,
) -> Result<HttpResponse, ApiError> {
    let task = NewTask::validate(body.into_inner(), state.registry.as_ref())?;
    let to_insert = task.clone();
    let inserted = store::run(&state.pool, move |conn| task_store::insert_task(conn, &to_insert)).await?;
    match inserted {
        Inserted::Created(row) => {
            state.worker.notify_work_available();
            tracing::info!(task.id = row.id, task.r#type = %row.task_type, "task accepted");
            Ok(HttpResponse::Created().json(row.into_response()?))
        }
        Inserted::Existing(row) if task.matches(&row.task_type, &row.payload, row.max_attempts) => {
            tracing::debug!(task.id = row.id, "idempotency key names an existing task");
            Ok(HttpResponse::Ok().json(row.into_response()?))
        }
        Inserted::Existing(row) => Err(ApiError::Conflict {
            code: "IDEMPOTENCY_KEY_REUSED",
            message: format!(
                "idempotency key already names task {} with a different type, payload or maxAttempts",
                row.id
            ),
        }),
    }
}

/// `GET /tasks` query; unknown parameters are refused.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListTasksQuery {
    status: Option<String>,
    #[serde(rename = "type")]
    task_type: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
}

impl ListTasksQuery {
    /// The store filter and page size this query asks for, or the 400 that says what is wrong.
    fn into_filter(self) -> Result<(TaskFilter, PageRequest), ApiError> {
        let page = PageRequest::parse(self.limit, self.cursor.as_deref())?;
        let status = match self.status.as_deref() {
            None => None,
            Some(raw) => Some(TaskStatus::parse(raw).ok_or_else(|| ApiError::BadRequest {
                code: "INVALID_STATUS",
                message: format!(
                    "status must be one of {}, got {raw:?}",
                    TaskStatus::ALL.map(TaskStatus::as_str).join(", ")
                ),
            })?),
        };
        check_type_filter(self.task_type.as_deref())?;
        let filter = TaskFilter {
            status,
            task_type: self.task_type,
            before_id: page.before_id,
        };
        Ok((filter, page))
    }
}

#[utoipa::path(
    get, path = "/tasks", tag = "tasks",
    params(
        ("status" = Option<TaskStatus>, Query, description = "Only tasks in this status"),
        ("type" = Option<String>, Query, min_length = 1, description = "Only tasks of this type"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 100,
            description = "Tasks per page, 1 to 100 (default 20)"),
        ("cursor" = Option<String>, Query, pattern = "^76313a3[1-9](3[0-9]){0,17}$",
            description = "`nextCursor` of the previous page (opaque)"),
    ),
    responses(
        (status = 200, description = "One page of tasks, newest first", body = TaskPage),
        (status = 400, description = "Unknown parameter (INVALID_QUERY), bad status, type, limit or cursor \
            (INVALID_STATUS, INVALID_TYPE, INVALID_LIMIT, INVALID_CURSOR)", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
/// `GET /tasks?status=&type=&limit=&cursor=`: newest first. The cursor names the last id
/// returned, so pages stay correct while new tasks are inserted.
pub async fn list_tasks(
    state: web::Data<AppState>,
    query: web::Query<ListTasksQuery>,
) -> Result<HttpResponse, ApiError> {
    let (filter, page) = query.into_inner().into_filter()?;
    let rows = store::run(&state.pool, move |conn| {
        task_store::list_tasks(conn, &filter, page.rows_to_fetch())
    })
    .await?;
    let (rows, next_cursor) = page.finish(rows, |row| row.id);
    let items = rows
        .into_iter()
        .map(|row| row.into_response())
        .collect::<Result<Vec<_>, _>>()?;
    Ok(HttpResponse::Ok().json(TaskPage { items, next_cursor }))
}

#[utoipa::path(
    get, path = "/tasks/{id}", tag = "tasks",
    params(("id" = i64, Path, minimum = 1, description = "Task id (positive integer)")),
    responses(
        (status = 200, description = "The task", body = TaskResponse),
        (status = 400, description = "Invalid id", body = ErrorBody),
        (status = 404, description = "No such task", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
/// `GET /tasks/{id}`.
pub async fn get_task(state: web::Data<AppState>, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let id = parse_task_id(&id)?;
    let row = store::run(&state.pool, move |conn| task_store::find_task(conn, id))
        .await?
        .ok_or(ApiError::TaskNotFound(id))?;
    Ok(HttpResponse::Ok().json(row.into_response()?))
}

#[utoipa::path(
    put, path = "/tasks/{id}/cancel", tag = "tasks",
    params(("id" = i64, Path, minimum = 1, description = "Task id (positive integer)")),
    responses(
        (status = 204, description = "The task is CANCELED (also when it already was)"),
        (status = 400, description = "Invalid id", body = ErrorBody),
        (status = 404, description = "No such task", body = ErrorBody),
        (status = 409, description = "The task is SUCCEEDED or FAILED", body = ErrorBody,
            example = json!({"code": "TASK_NOT_CANCELABLE", "message": "Cannot cancel task in state SUCCEEDED"})),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
/// `PUT /tasks/{id}/cancel`: 204 once the task is CANCELED (also when it already was).
pub async fn cancel_task(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_task_id(&id)?;
    for _ in 0..CANCEL_RACE_RETRIES {
        let row = store::run(&state.pool, move |conn| task_store::find_task(conn, id))
            .await?
            .ok_or(ApiError::TaskNotFound(id))?;
        let current = row.state()?;
        let next = transition(current, TaskEvent::Cancel).map_err(ApiError::cannot_cancel)?;
        if next == current {
            return Ok(HttpResponse::NoContent().finish());
        }
        let canceled = store::run(&state.pool, move |conn| {
            task_store::cancel_task_if_in(conn, id, current.status, next)
        })
        .await?;
        if canceled {
            state.worker.on_task_canceled(id, &row.task_type);
            tracing::info!(task.id = id, from = %current.status, "task canceled");
            return Ok(HttpResponse::NoContent().finish());
        }
        // The task moved on between our read and our write: decide again from its new state.
    }
    Err(ApiError::Conflict {
        code: "TASK_BUSY",
        message: format!("task {id} kept changing state; retry the cancel"),
    })
}

#[utoipa::path(
    get, path = "/tasks/{id}/attempts", tag = "tasks",
    params(("id" = i64, Path, minimum = 1, description = "Task id (positive integer)")),
    responses(
        (status = 200, description = "The attempts, oldest first", body = Vec<AttemptResponse>),
        (status = 400, description = "Invalid id", body = ErrorBody),
        (status = 404, description = "No such task", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
/// `GET /tasks/{id}/attempts`: the attempt history, oldest first.
pub async fn list_attempts(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_task_id(&id)?;
    let (task, attempts) = store::run(&state.pool, move |conn| {
        Ok((
            task_store::find_task(conn, id)?,
            attempt_store::list_attempts(conn, id)?,
        ))
    })
    .await?;
    if task.is_none() {
        return Err(ApiError::TaskNotFound(id));
    }
    let body: Vec<AttemptResponse> = attempts
        .into_iter()
        .map(|a| AttemptResponse {
            attempt: a.attempt,
            worker_id: a.worker_id,
            due_at: a.due_at,
            started_at: a.started_at,
            finished_at: a.finished_at,
            outcome: a.outcome,
            error: a.error,
        })
        .collect();
    Ok(HttpResponse::Ok().json(body))
}

#[utoipa::path(
    get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "The process is up", body = Object, example = json!({"status": "ok"})))
)]
/// `GET /healthz`: the process is up (no I/O).
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}
