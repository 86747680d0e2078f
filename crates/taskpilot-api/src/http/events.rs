//! `/api/tasks/{id}/events` and `/api/events`: Server-Sent Events of executions, one web
//! task's (history first, ending after its terminal event) or the caller's tenant's (from
//! now, or after `Last-Event-ID`).

use std::convert::Infallible;

use actix_web::http::header::{HeaderValue, CACHE_CONTROL};
use actix_web::{web, HttpRequest, HttpResponse};
use dtp_contract::ErrorBody;
use futures_util::stream;

use super::error::{parse_web_task_id, ApiError};
use super::tasks::web_task_of;
use super::{AppState, WebTaskIdParam};
use crate::domain::api_key::Principal;
use crate::event_streams::StreamScope;

/// The position after the event `Last-Event-ID` names, if the request carries one.
async fn resumed_after(state: &AppState, request: &HttpRequest) -> Result<Option<i64>, ApiError> {
    let Some(header) = request.headers().get("last-event-id") else {
        return Ok(None);
    };
    let cursor = header.to_str().unwrap_or_default().trim().to_owned();
    if cursor.is_empty() || cursor.len() > 64 {
        return Err(ApiError::UnknownLastEvent(
            dtp_contract::shown(&cursor).to_string(),
        ));
    }
    match state.streams.position_of(cursor.clone()).await? {
        Some(seq) => Ok(Some(seq)),
        None => Err(ApiError::UnknownLastEvent(cursor)),
    }
}

fn event_stream(state: &AppState, scope: StreamScope, after: i64) -> HttpResponse {
    let frames = state.streams.open(scope, after, state.shutdown.clone());
    let body = stream::unfold(frames, |mut frames| async move {
        frames
            .recv()
            .await
            .map(|frame| (Ok::<_, Infallible>(frame), frames))
    });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((CACHE_CONTROL, HeaderValue::from_static("no-cache")))
        .streaming(body)
}

#[utoipa::path(
    get, path = "/api/tasks/{id}/events", tag = "execution",
    params(WebTaskIdParam,
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event (its `id:`)")),
    responses(
        (status = 200, description = "`text/event-stream`: each event of the task's execution as TaskPilot \
            mirrored it (`id:` its cursor, `event:` its kind, `data:` the event with `webTaskId`), from the \
            first; the stream ends after the terminal event. A comment every 15 s keeps it open.",
            content_type = "text/event-stream", body = String),
        (status = 400, description = "Invalid id", body = ErrorBody),
        (status = 404, description = "No such web task (WEB_TASK_NOT_FOUND)", body = ErrorBody),
        (status = 409, description = "The web task is not bound yet (NOT_BOUND)", body = ErrorBody),
        (status = 410, description = "Last-Event-ID names no event TaskPilot keeps (CURSOR_EXPIRED)", body = ErrorBody),
        (status = 503, description = "TaskPilot's database unavailable", body = ErrorBody),
    )
)]
/// `GET /api/tasks/{id}/events`: one web task's execution events, live.
pub async fn web_task_events(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let id = parse_web_task_id(&id)?;
    let (row, _) = web_task_of(&state, &principal, id).await?;
    let binding = row.binding().ok_or(ApiError::NotBound(id))?;
    let after = resumed_after(&state, &request).await?.unwrap_or(0);
    let scope = StreamScope {
        tenant: principal.tenant,
        scheduler_task_id: Some(binding.scheduler_task_id),
    };
    Ok(event_stream(&state, scope, after))
}

#[utoipa::path(
    get, path = "/api/events", tag = "execution",
    params(("Last-Event-ID" = Option<String>, Header, description = "Resume after this event (its `id:`)")),
    responses(
        (status = 200, description = "`text/event-stream`: the execution events of the caller's tenant's web \
            tasks as TaskPilot mirrors them, from now (or after `Last-Event-ID`), until the client leaves. A \
            comment every 15 s keeps it open; a client that does not keep up is disconnected.",
            content_type = "text/event-stream", body = String),
        (status = 410, description = "Last-Event-ID names no event TaskPilot keeps (CURSOR_EXPIRED)", body = ErrorBody),
        (status = 503, description = "TaskPilot's database unavailable", body = ErrorBody),
    )
)]
/// `GET /api/events`: the caller's tenant's execution events, live.
pub async fn tenant_events(
    state: web::Data<AppState>,
    principal: Principal,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let after = match resumed_after(&state, &request).await? {
        Some(seq) => seq,
        None => state.streams.now().await?,
    };
    let scope = StreamScope {
        tenant: principal.tenant,
        scheduler_task_id: None,
    };
    Ok(event_stream(&state, scope, after))
}
