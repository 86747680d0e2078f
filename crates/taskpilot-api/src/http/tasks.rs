//! `/api/tasks`: create, read and list web tasks.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use dtp_contract::{shown, ErrorBody, RetryState, TaskStatus};
use serde::{Deserialize, Serialize};
use service_http::page_cursor::{check_type_filter, CursorKey, PageRequest};

use super::error::{parse_web_task_id, ApiError};
use super::{AppState, WebTaskIdParam};
use crate::domain::api_key::Principal;
use crate::domain::{ExecutionRecord, NewWebTask, WebTaskStatus};
use crate::store::task_executions::ExecutionRow;
use crate::store::web_tasks::{WebTaskFilter, WebTaskRow, WebTaskWithExecution};
use crate::store::StoreError;

/// `POST /api/tasks` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"type": "report", "payload": {"month": "2026-10"}}))]
pub struct CreateWebTaskRequest {
    /// What the task is, in the user's words: 1 to 100 characters, not only whitespace.
    #[serde(rename = "type")]
    #[schema(min_length = 1, max_length = 100, pattern = r"^[^\u0000]*\S[^\u0000]*$")]
    pub task_type: String,
    /// Any JSON; defaults to null.
    #[serde(default)]
    #[schema(value_type = dtp_contract::StorableJson)]
    pub payload: serde_json::Value,
}

/// A web task on the wire.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({
    "id": 7, "type": "report", "payload": {"month": "2026-10"}, "status": "SUBMITTED",
    "schedulerTaskId": 41, "schedulerType": "demo",
    "createdAt": "2026-11-23T10:00:00.000Z", "updatedAt": "2026-11-23T10:00:00.120Z",
    "execution": {"status": "SUCCEEDED", "retryState": "COMPLETED", "attemptCount": 1, "lastError": null,
        "startedAt": "2026-11-23T10:00:00.122Z", "completedAt": "2026-11-23T10:00:00.125Z",
        "syncedAt": "2026-11-23T10:00:00.131Z"}
}))]
pub struct WebTaskResponse {
    pub id: i64,
    #[serde(rename = "type")]
    pub task_type: String,
    pub payload: serde_json::Value,
    /// `PENDING` until bound to a scheduler task, `SUBMITTED` after.
    #[schema(value_type = WebTaskStatus)]
    pub status: &'static str,
    /// The scheduler task this web task is bound to; null until bound.
    pub scheduler_task_id: Option<i64>,
    pub scheduler_type: Option<String>,
    #[serde(with = "dtp_contract::millis")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "dtp_contract::millis")]
    pub updated_at: DateTime<Utc>,
    /// The execution as TaskPilot last heard of it from the scheduler's change feed; null
    /// until bound (and until first heard of, for a task bound before TaskPilot kept it).
    pub execution: Option<ExecutionSummary>,
}

/// A web task's execution as mirrored from the scheduler's change feed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionSummary {
    pub status: TaskStatus,
    pub retry_state: RetryState,
    pub attempt_count: i32,
    pub last_error: Option<String>,
    #[serde(with = "dtp_contract::millis::option")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(with = "dtp_contract::millis::option")]
    pub completed_at: Option<DateTime<Utc>>,
    /// When TaskPilot last wrote this copy.
    #[serde(with = "dtp_contract::millis")]
    pub synced_at: DateTime<Utc>,
}

impl ExecutionSummary {
    pub fn of_record(record: &ExecutionRecord, synced_at: DateTime<Utc>) -> Self {
        Self {
            status: record.status,
            retry_state: record.retry_state,
            attempt_count: record.attempt_count,
            last_error: record.last_error.clone(),
            started_at: record.started_at,
            completed_at: record.completed_at,
            synced_at,
        }
    }

    pub(super) fn of_row(row: &ExecutionRow) -> Result<Self, StoreError> {
        Ok(Self::of_record(&row.record()?, row.synced_at))
    }
}

impl WebTaskResponse {
    /// As stored: the row and its mirrored execution.
    pub fn from_stored((row, execution): WebTaskWithExecution) -> Result<Self, StoreError> {
        let execution = execution.as_ref().map(ExecutionSummary::of_row).transpose()?;
        Self::from_row(row, execution)
    }

    /// The web task on the wire, with its execution if TaskPilot knows it.
    pub fn from_row(row: WebTaskRow, execution: Option<ExecutionSummary>) -> Result<Self, StoreError> {
        Ok(Self {
            execution,
            status: row.status()?.as_str(),
            id: row.id,
            task_type: row.task_type,
            payload: row.payload,
            scheduler_task_id: row.scheduler_task_id,
            scheduler_type: row.scheduler_type,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

/// `GET /api/tasks` query; unknown parameters are refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub(super) status: Option<String>,
    #[serde(rename = "type")]
    pub(super) task_type: Option<String>,
    pub(super) bound: Option<String>,
    #[serde(rename = "executionStatus")]
    pub(super) execution_status: Option<String>,
    #[serde(rename = "createdFrom")]
    pub(super) created_from: Option<String>,
    #[serde(rename = "createdBefore")]
    pub(super) created_before: Option<String>,
    pub(super) limit: Option<i64>,
    pub(super) cursor: Option<String>,
}

/// A `createdFrom` / `createdBefore` value: an RFC 3339 time.
fn parse_time(name: &str, raw: Option<&str>) -> Result<Option<DateTime<Utc>>, ApiError> {
    raw.map(|raw| {
        DateTime::parse_from_rfc3339(raw)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| {
                bad_request(
                    "INVALID_TIME",
                    format!("{name} must be an RFC 3339 time, got {:?}", shown(raw)),
                )
            })
    })
    .transpose()
}

impl ListQuery {
    /// The store filter and page size this query asks for, or the 400 that says what is wrong.
    pub(super) fn into_filter(
        self,
        tenant: String,
        key: &CursorKey,
    ) -> Result<(WebTaskFilter, PageRequest), ApiError> {
        // A cursor continues only the listing it came from: this tenant's, with these filters.
        let listing = key.listing([
            "taskpilot",
            "GET /api/tasks",
            &tenant,
            self.status.as_deref().unwrap_or_default(),
            self.task_type.as_deref().unwrap_or_default(),
            self.bound.as_deref().unwrap_or_default(),
            self.execution_status.as_deref().unwrap_or_default(),
            self.created_from.as_deref().unwrap_or_default(),
            self.created_before.as_deref().unwrap_or_default(),
        ]);
        let page = PageRequest::parse(self.limit, self.cursor.as_deref(), listing)?;
        let status = match self.status.as_deref() {
            None => None,
            Some(raw) => Some(WebTaskStatus::parse(raw).ok_or_else(|| {
                let known = WebTaskStatus::ALL.map(WebTaskStatus::as_str).join(", ");
                bad_request(
                    "INVALID_STATUS",
                    format!("status must be one of {known}, got {:?}", shown(raw)),
                )
            })?),
        };
        let bound = match self.bound.as_deref() {
            None => None,
            Some("true") => Some(true),
            Some("false") => Some(false),
            Some(raw) => {
                return Err(bad_request(
                    "INVALID_BOUND",
                    format!("bound must be true or false, got {:?}", shown(raw)),
                ))
            }
        };
        let execution_status = match self.execution_status.as_deref() {
            None => None,
            Some(raw) => Some(TaskStatus::parse(raw).ok_or_else(|| {
                let known = TaskStatus::ALL.map(TaskStatus::as_str).join(", ");
                bad_request(
                    "INVALID_EXECUTION_STATUS",
                    format!("executionStatus must be one of {known}, got {:?}", shown(raw)),
                )
            })?),
        };
        check_type_filter(self.task_type.as_deref())?;
        let filter = WebTaskFilter {
            tenant,
            status,
            task_type: self.task_type,
            bound,
            execution_status,
            created_from: parse_time("createdFrom", self.created_from.as_deref())?,
            created_before: parse_time("createdBefore", self.created_before.as_deref())?,
            before_id: page.before_id,
            unfinished_only: false,
        };
        Ok((filter, page))
    }
}

fn bad_request(code: &'static str, message: String) -> ApiError {
    ApiError::BadRequest { code, message }
}

/// One page of `GET /api/tasks`, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebTaskPage {
    pub(super) items: Vec<WebTaskResponse>,
    /// Pass as `cursor` to get the next (older) page; null on the last page.
    pub(super) next_cursor: Option<String>,
}

#[utoipa::path(
    post, path = "/api/tasks", tag = "web tasks",
    request_body = CreateWebTaskRequest,
    responses(
        (status = 201, description = "Web task created (PENDING, not yet bound)", body = WebTaskResponse),
        (status = 400, description = "Malformed JSON, missing field or unknown field", body = ErrorBody),
        (status = 413, description = "Body over the size limit", body = ErrorBody),
        (status = 422, description = "Type empty, too long or holding NUL characters (VALIDATION_FAILED)",
            body = ErrorBody),
        (status = 503, description = "TaskPilot's database unavailable", body = ErrorBody),
    )
)]
/// `POST /api/tasks`: 201 with the new, unbound web task.
pub async fn create_web_task(
    state: web::Data<AppState>,
    principal: Principal,
    body: web::Json<CreateWebTaskRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let row = create(&state, &principal, body.task_type, body.payload).await?;
    Ok(HttpResponse::Created().json(WebTaskResponse::from_row(row, None)?))
}

/// Creates an unbound web task of the principal's tenant.
pub(super) async fn create(
    state: &AppState,
    principal: &Principal,
    task_type: String,
    payload: serde_json::Value,
) -> Result<WebTaskRow, ApiError> {
    let task = NewWebTask::validate(task_type, payload, state.scheduler_max_body_bytes)?
        .for_tenant(&principal.tenant);
    let row = state.web_tasks.create(task).await?;
    tracing::info!(web_task.id = row.id, "web task created");
    Ok(row)
}

#[utoipa::path(
    get, path = "/api/tasks/{id}", tag = "web tasks",
    params(WebTaskIdParam),
    responses(
        (status = 200, description = "The web task", body = WebTaskResponse),
        (status = 400, description = "Invalid id", body = ErrorBody),
        (status = 404, description = "No such web task (WEB_TASK_NOT_FOUND)", body = ErrorBody),
        (status = 503, description = "TaskPilot's database unavailable", body = ErrorBody),
    )
)]
/// `GET /api/tasks/{id}`.
pub async fn get_web_task(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_web_task_id(&id)?;
    let stored = web_task_of(&state, &principal, id).await?;
    Ok(HttpResponse::Ok().json(WebTaskResponse::from_stored(stored)?))
}

/// Web task `id` with its execution if it is the principal's tenant's; another tenant's is
/// answered as one that does not exist.
pub(super) async fn web_task_of(
    state: &AppState,
    principal: &Principal,
    id: i64,
) -> Result<WebTaskWithExecution, ApiError> {
    Ok(state.links.owned(&principal.tenant, id).await?)
}

#[utoipa::path(
    get, path = "/api/tasks", tag = "web tasks",
    params(
        ("status" = Option<WebTaskStatus>, Query, description = "Only web tasks in this status"),
        ("type" = Option<String>, Query, min_length = 1, description = "Only web tasks of this type"),
        ("bound" = Option<bool>, Query, description = "Only bound (true) or unbound (false) web tasks"),
        ("executionStatus" = Option<TaskStatus>, Query,
            description = "Only web tasks whose execution, as TaskPilot last heard of it, is in this status"),
        ("createdFrom" = Option<String>, Query, format = DateTime, description = "Only web tasks created at or after this time"),
        ("createdBefore" = Option<String>, Query, format = DateTime, description = "Only web tasks created before this time"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 100,
            description = "Web tasks per page, 1 to 100 (default 20)"),
        ("cursor" = Option<String>, Query, pattern = "^[A-Za-z0-9_-]{32}$",
            description = "`nextCursor` of the previous page (opaque)"),
    ),
    responses(
        (status = 200, description = "One page of web tasks, newest first", body = WebTaskPage),
        (status = 400, description = "Unknown parameter (INVALID_QUERY), bad status, type, bound, execution \
            status, time, limit or cursor (INVALID_STATUS, INVALID_TYPE, INVALID_BOUND, INVALID_EXECUTION_STATUS, \
            INVALID_TIME, INVALID_LIMIT, INVALID_CURSOR)", body = ErrorBody),
        (status = 503, description = "TaskPilot's database unavailable", body = ErrorBody),
    )
)]
/// `GET /api/tasks?status=&type=&bound=&executionStatus=&createdFrom=&createdBefore=&limit=&cursor=`:
/// newest first, from TaskPilot's own database. The cursor seals
/// the last id returned, so pages stay correct while new tasks are inserted.
pub async fn list_web_tasks(
    state: web::Data<AppState>,
    principal: Principal,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(list(&state, principal, query.into_inner()).await?))
}

/// One page of the principal's tenant's web tasks that `query` asks for, newest first.
pub(super) async fn list(
    state: &AppState,
    principal: Principal,
    query: ListQuery,
) -> Result<WebTaskPage, ApiError> {
    let (filter, page) = query.into_filter(principal.tenant, &state.cursor_key)?;
    let rows_to_fetch = page.rows_to_fetch();
    let rows = state.web_tasks.list(filter, rows_to_fetch).await?;
    let (rows, next_cursor) = page.finish(rows, |(row, _)| row.id);
    let items = rows
        .into_iter()
        .map(WebTaskResponse::from_stored)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(WebTaskPage { items, next_cursor })
}
