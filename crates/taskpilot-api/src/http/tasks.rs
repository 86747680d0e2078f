//! `/api/tasks`: create, read and list web tasks.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::error::{parse_web_task_id, ApiError};
use super::AppState;
use crate::domain::NewWebTask;
use crate::store::web_tasks::{self as web_task_store, WebTaskRow};
use crate::store::{self, StoreError};

pub const DEFAULT_PAGE_SIZE: i64 = 20;
pub const MAX_PAGE_SIZE: i64 = 100;

/// `POST /api/tasks` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateWebTaskRequest {
    #[serde(rename = "type")]
    pub task_type: String,
    #[serde(default)]
    pub payload: serde_json::Value,
}

/// A web task on the wire.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebTaskResponse {
    pub id: i64,
    #[serde(rename = "type")]
    pub task_type: String,
    pub payload: serde_json::Value,
    pub status: &'static str,
    pub scheduler_task_id: Option<i64>,
    pub scheduler_type: Option<String>,
    #[serde(with = "dtp_contract::millis")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "dtp_contract::millis")]
    pub updated_at: DateTime<Utc>,
}

impl WebTaskResponse {
    pub fn from_row(row: WebTaskRow) -> Result<Self, StoreError> {
        Ok(Self {
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

/// `GET /api/tasks` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    limit: Option<i64>,
    cursor: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebTaskPage {
    items: Vec<WebTaskResponse>,
    /// Pass as `cursor` to get the next (older) page; null on the last page.
    next_cursor: Option<String>,
}

/// `POST /api/tasks`: 201 with the new, unbound web task.
pub async fn create_web_task(
    state: web::Data<AppState>,
    body: web::Json<CreateWebTaskRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let task = NewWebTask::validate(body.task_type, body.payload)?;
    let row = store::run(&state.pool, move |conn| {
        web_task_store::insert_web_task(conn, &task)
    })
    .await?;
    tracing::info!(web_task.id = row.id, "web task created");
    Ok(HttpResponse::Created().json(WebTaskResponse::from_row(row)?))
}

/// `GET /api/tasks/{id}`.
pub async fn get_web_task(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_web_task_id(&id)?;
    let row = store::run(&state.pool, move |conn| web_task_store::find_web_task(conn, id))
        .await?
        .ok_or(ApiError::WebTaskNotFound(id))?;
    Ok(HttpResponse::Ok().json(WebTaskResponse::from_row(row)?))
}

/// `GET /api/tasks?limit=&cursor=`: newest first. The cursor is the id of the last item
/// returned, so pages stay correct while new tasks are inserted.
pub async fn list_web_tasks(
    state: web::Data<AppState>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = query.limit.unwrap_or(DEFAULT_PAGE_SIZE);
    if !(1..=MAX_PAGE_SIZE).contains(&limit) {
        return Err(ApiError::BadRequest {
            code: "INVALID_LIMIT",
            message: format!("limit must be between 1 and {MAX_PAGE_SIZE}, got {limit}"),
        });
    }
    let before = match query.cursor.as_deref() {
        None => None,
        Some(raw) => Some(parse_cursor(raw)?),
    };
    let rows = store::run(&state.pool, move |conn| {
        web_task_store::list_web_tasks(conn, before, limit + 1)
    })
    .await?;
    let has_more = rows.len() > usize::try_from(limit).unwrap_or(usize::MAX);
    let items = rows
        .into_iter()
        .take(usize::try_from(limit).unwrap_or(usize::MAX))
        .map(WebTaskResponse::from_row)
        .collect::<Result<Vec<_>, _>>()?;
    let next_cursor = if has_more {
        items.last().map(|t| t.id.to_string())
    } else {
        None
    };
    Ok(HttpResponse::Ok().json(WebTaskPage { items, next_cursor }))
}

fn parse_cursor(raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::BadRequest {
            code: "INVALID_CURSOR",
            message: format!("cursor {raw:?} is not one this API returned"),
        })
}

/// `GET /healthz`: the process is up (no I/O).
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}
