//! `/tasks`: submit (one at a time or in batches), list, read, cancel, and read the
//! attempt history of tasks.

use actix_web::{web, HttpResponse};
use dtp_contract::{
    AttemptResponse, CreateTaskBatchRequest, CreateTaskRequest, ErrorBody, TaskBatchResponse, TaskPage,
    TaskResponse, TaskStatus,
};
use serde::Deserialize;
use service_http::page_cursor::{check_type_filter, CursorKey, PageRequest};

use super::error::{parse_task_id, ApiError};
use super::AppState;
use crate::cancellation;
use crate::domain::access::Caller;
use crate::domain::{NewTask, NewTaskBatch};
use crate::store::tasks::{Inserted, TaskFilter};

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
    caller: Caller,
    body: web::Json<CreateTaskRequest>,
) -> Result<HttpResponse, ApiError> {
    let task = NewTask::validate(body.into_inner(), state.registry.as_ref())?.scoped_to(&caller.name);
    let inserted = state.tasks.submit(task.clone()).await?;
    match inserted {
        Inserted::Created(row) => {
            state.worker.notify_work_available();
            tracing::info!(task.id = row.id, task.r#type = %row.task_type, "task accepted");
            Ok(HttpResponse::Created().json(row.into_response()?))
        }
        Inserted::Existing(row) if task.matches(&row.submitted_as()) => {
            tracing::debug!(task.id = row.id, "idempotency key names an existing task");
            Ok(HttpResponse::Ok().json(row.into_response()?))
        }
        Inserted::Existing(row) => Err(ApiError::key_reused(format!(
            "idempotency key already names task {}, submitted with another type, payload, maxAttempts, timeoutMs or runAt",
            row.id
        ))),
    }
}

#[utoipa::path(
    post, path = "/tasks/batch", tag = "tasks",
    request_body = CreateTaskBatchRequest,
    responses(
        (status = 201, description = "At least one task was created; one task per item, in request order",
            body = TaskBatchResponse),
        (status = 200, description = "Every item's idempotency key already names its task", body = TaskBatchResponse),
        (status = 400, description = "Malformed JSON, missing field or wrong type", body = ErrorBody),
        (status = 409, description = "An idempotency key names a different task, already stored or earlier in \
            the batch (IDEMPOTENCY_KEY_REUSED); nothing was inserted", body = ErrorBody),
        (status = 413, description = "Body over the size limit (it applies to the whole batch)", body = ErrorBody),
        (status = 422, description = "Empty or over 1000 items, or an item with an unknown type or a value out \
            of range; the message names the item (`tasks[3]: ...`) and nothing was inserted", body = ErrorBody,
            example = json!({"code": "VALIDATION_FAILED", "message": "tasks[3]: maxAttempts must be between 1 and 100, got 0"})),
        (status = 429, description = "Over the token's quota (RATE_LIMITED): a batch costs one per task;             retry after `Retry-After` seconds", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
/// `POST /tasks/batch`: 1 to 1000 tasks, all accepted or none. Each item is validated and
/// deduplicated by its idempotency key exactly as `POST /tasks` would; items of one batch
/// that share a key are answered by one task (a different request under the same key is a
/// 409). Answers 201 when at least one task was created and 200 when every item named an
/// existing task, so that a replayed batch is recognisable; the worker is woken once.
pub async fn create_task_batch(
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Json<CreateTaskBatchRequest>,
) -> Result<HttpResponse, ApiError> {
    let items = body.tasks.len();
    // The request itself was charged one; each further task costs one more.
    state.rate_limiter.charge(
        &caller.name,
        u32::try_from(items.saturating_sub(1)).unwrap_or(u32::MAX),
    )?;
    let mut batch =
        NewTaskBatch::validate(body.into_inner().tasks, state.registry.as_ref())?.scoped_to(&caller.name);
    let tasks = std::mem::take(&mut batch.tasks);
    let inserted = state.tasks.submit_batch(tasks).await?;
    let inserted = inserted.map_err(|reused| {
        let item = batch.first_item_of(reused.slot);
        ApiError::key_reused(format!(
            "tasks[{item}]: idempotency key already names task {}, submitted with another type, payload, maxAttempts, timeoutMs or runAt",
            reused.existing_id
        ))
    })?;
    let created = inserted
        .iter()
        .filter(|i| matches!(i, Inserted::Created(_)))
        .count();
    let answers = inserted
        .into_iter()
        .map(|i| match i {
            Inserted::Created(row) | Inserted::Existing(row) => row.into_response(),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let tasks: Vec<TaskResponse> = batch
        .answered_by
        .iter()
        .map(|slot| answers[*slot].clone())
        .collect();
    if created == 0 {
        tracing::debug!(
            tasks = tasks.len(),
            "every idempotency key of the batch names an existing task"
        );
        return Ok(HttpResponse::Ok().json(TaskBatchResponse { tasks }));
    }
    state.worker.notify_work_available();
    tracing::info!(tasks = tasks.len(), created, "task batch accepted");
    Ok(HttpResponse::Created().json(TaskBatchResponse { tasks }))
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
    fn into_filter(self, key: &CursorKey) -> Result<(TaskFilter, PageRequest), ApiError> {
        // A cursor continues only the listing it came from, with the same filters.
        let listing = key.listing([
            "dtp",
            "GET /tasks",
            self.status.as_deref().unwrap_or_default(),
            self.task_type.as_deref().unwrap_or_default(),
        ]);
        let page = PageRequest::parse(self.limit, self.cursor.as_deref(), listing)?;
        let status = match self.status.as_deref() {
            None => None,
            Some(raw) => Some(TaskStatus::parse(raw).ok_or_else(|| ApiError::BadRequest {
                code: "INVALID_STATUS",
                message: format!(
                    "status must be one of {}, got {:?}",
                    TaskStatus::ALL.map(TaskStatus::as_str).join(", "),
                    service_http::http_errors::shown(raw)
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
        ("cursor" = Option<String>, Query, pattern = "^[A-Za-z0-9_-]{32}$",
            description = "`nextCursor` of the previous page (opaque)"),
    ),
    responses(
        (status = 200, description = "One page of tasks, newest first", body = TaskPage),
        (status = 400, description = "Unknown parameter (INVALID_QUERY), bad status, type, limit or cursor \
            (INVALID_STATUS, INVALID_TYPE, INVALID_LIMIT, INVALID_CURSOR)", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
/// `GET /tasks?status=&type=&limit=&cursor=`: newest first. The cursor seals the last id
/// returned, so pages stay correct while new tasks are inserted.
pub async fn list_tasks(
    state: web::Data<AppState>,
    query: web::Query<ListTasksQuery>,
) -> Result<HttpResponse, ApiError> {
    let (filter, page) = query.into_inner().into_filter(&state.cursor_key)?;
    let rows_to_fetch = page.rows_to_fetch();
    let rows = state.tasks.list(filter, rows_to_fetch).await?;
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
    let row = state.tasks.find(id).await?.ok_or(ApiError::TaskNotFound(id))?;
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
    cancellation::cancel_task(&state.tasks, &state.worker, id).await?;
    Ok(HttpResponse::NoContent().finish())
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
    let (_, attempts) = state
        .tasks
        .find_with_attempts(id)
        .await?
        .ok_or(ApiError::TaskNotFound(id))?;
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
