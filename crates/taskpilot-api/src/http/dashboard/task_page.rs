//! One task's page: its payload and binding, the execution view with its latencies and
//! result, every attempt on a timeline, the event history; binding and canceling. The
//! execution section follows the task's event stream until its terminal event.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use maud::{html, Markup};
use serde::Deserialize;
use service_http::request_trace::RequestContext;

use super::layout::{self, page, Section, Viewer};
use super::task_list::{registered_types, type_choice};
use super::{html_page, load_page, PageError};
use crate::domain::api_key::Principal;
use crate::domain::execution_view::AttemptView;
use crate::domain::ExecutionView;
use crate::http::error::{parse_web_task_id, ApiError};
use crate::http::tasks::{self, WebTaskResponse};
use crate::http::AppState;
use crate::store::task_executions::{self as execution_store, StoredEvent};
use crate::store::{self};

/// The most events the history shows (a task with more retries than this is rare).
const HISTORY_LIMIT: i64 = 500;

/// `GET /ui/tasks/{id}`.
pub(super) async fn task_page(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
    context: RequestContext,
) -> Result<HttpResponse, PageError> {
    let (viewer, task) = viewed_task(&state, &principal, &id).await?;
    let id = task.id;
    let execution = match task.scheduler_task_id {
        Some(_) => Some(execution_section_of(&state, &principal, &viewer, &task, &context).await?),
        None => None,
    };
    let types = match (task.scheduler_task_id, viewer.can_write) {
        (None, true) => registered_types(&state, &context).await,
        _ => None,
    };
    let body = html! {
        nav.crumbs aria-label="Breadcrumb" { a href="/ui" { "Tasks" } " / " span { "#" (task.id) } }
        h1 { "Task #" (task.id) " " small { (task.task_type) } }
        div.columns {
            section aria-labelledby="task-title" {
                h2 #task-title { "Web task" }
                dl.facts {
                    dt { "Type" } dd { (task.task_type) }
                    dt { "Web status" } dd { (layout::status(task.status)) }
                    dt { "Created" } dd { (layout::time(Some(task.created_at))) }
                    dt { "Updated" } dd { (layout::time(Some(task.updated_at))) }
                    dt { "Binding" }
                    dd {
                        @match (task.scheduler_task_id, &task.scheduler_type) {
                            (Some(sid), Some(t)) => { "scheduler task " strong { (sid) } " of type " strong { (t) } },
                            _ => "not bound",
                        }
                    }
                }
                h3 { "Payload" }
                (layout::json(&task.payload))
                @if task.scheduler_task_id.is_none() && viewer.can_write {
                    form.bind hx-post={ "/ui/tasks/" (task.id) "/bind" } hx-target="#bind-result" hx-swap="innerHTML"
                        aria-label="Bind to the scheduler" {
                        label for="bind-type" { "Bind to scheduler type" }
                        (type_choice(types.as_deref(), "bind-type", false))
                        button type="submit" { "Bind" }
                        div #bind-result aria-live="assertive" {}
                    }
                }
            }
            @if let Some(execution) = execution { (execution) }
        }
    };
    Ok(html_page(page(
        &format!("Task #{id}"),
        Section::Tasks,
        Some(&viewer),
        body,
    )))
}

/// `GET /ui/tasks/{id}/execution`: the execution section again, as the stream asks.
pub(super) async fn execution_section(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
    context: RequestContext,
) -> Result<HttpResponse, PageError> {
    let (viewer, task) = viewed_task(&state, &principal, &id).await?;
    Ok(html_page(
        execution_section_of(&state, &principal, &viewer, &task, &context).await?,
    ))
}

/// Who looks, and the web task the path names, if it is theirs.
async fn viewed_task(
    state: &AppState,
    principal: &Principal,
    id: &str,
) -> Result<(Viewer, WebTaskResponse), ApiError> {
    let id = parse_web_task_id(id)?;
    let task = WebTaskResponse::from_stored(tasks::web_task_of(state, principal, id).await?)?;
    Ok((Viewer::of(principal), task))
}

async fn execution_section_of(
    state: &AppState,
    principal: &Principal,
    viewer: &Viewer,
    task: &WebTaskResponse,
    context: &RequestContext,
) -> Result<Markup, ApiError> {
    let view = state
        .links
        .execution(&principal.tenant, task.id, true, context)
        .await
        .map_err(ApiError::from);
    let history = match task.scheduler_task_id {
        Some(sid) => {
            let tenant = principal.tenant.clone();
            store::run(&state.pool, move |conn| {
                execution_store::events_after(conn, &tenant, Some(sid), 0, HISTORY_LIMIT)
            })
            .await?
        }
        None => Vec::new(),
    };
    let finished = match &view {
        Ok(view) => view.status.is_terminal(),
        Err(_) => task.execution.as_ref().is_some_and(|e| e.status.is_terminal()),
    };
    Ok(html! {
        section #execution aria-labelledby="execution-title" aria-live="polite"
            data-stream={ "/ui/tasks/" (task.id) "/events" }
            data-refresh={ "/ui/tasks/" (task.id) "/execution" }
            data-finished=(finished) {
            h2 #execution-title { "Execution" }
            @match &view {
                Ok(view) => {
                    (execution_facts(view))
                    @if viewer.can_write && !view.status.is_terminal() {
                        div.task-actions {
                            button.danger type="button" hx-post={ "/ui/tasks/" (task.id) "/cancel" }
                                hx-confirm={ "Cancel the execution of task #" (task.id) "?" }
                                hx-target="#action-result" hx-swap="innerHTML" { "Cancel execution" }
                            div #action-result aria-live="assertive" {}
                        }
                    }
                    @if let Some(result) = &view.result {
                        h3 { "Result" }
                        (layout::json(result))
                    }
                    @if let Some(attempts) = &view.attempts { (attempt_timeline(view, attempts)) }
                }
                Err(e) => {
                    div.alert role="alert" { strong { (e.code()) } " " (e.to_string()) }
                    @if let Some(e) = &task.execution {
                        p { "As TaskPilot last heard (" (layout::time(Some(e.synced_at))) "): " (layout::status(e.status.as_str())) }
                    }
                }
            }
            (event_history(&history))
        }
    })
}

fn execution_facts(view: &ExecutionView) -> Markup {
    html! {
        dl.facts {
            dt { "Status" } dd #execution-status { (layout::status(view.status.as_str())) }
            dt { "Retry state" } dd { (view.retry_state.as_str()) }
            dt { "Attempts" } dd { (view.attempt_count) " of " (view.max_attempts) }
            dt { "Created" } dd { (layout::time(Some(view.created_at))) }
            dt { "Scheduled for" } dd { (layout::time(Some(view.scheduled_for))) }
            dt { "Started" } dd { (layout::time(view.processing_started_at)) }
            dt { "Completed" } dd { (layout::time(view.completed_at)) }
            dt { "Queue latency" } dd { (layout::millis(view.queue_latency_ms)) }
            dt { "Processing latency" } dd { (layout::millis(view.processing_latency_ms)) }
            dt { "End to end" } dd { (layout::millis(view.end_to_end_latency_ms)) }
            @if let Some(error) = &view.last_error { dt { "Last error" } dd.error-text { (error) } }
            @if view.archived { dt { "Archived" } dd { "the scheduler has deleted this finished task; this is TaskPilot's last copy" } }
        }
    }
}

/// Width of the timeline's drawing, in its own units.
const TIMELINE_WIDTH: f64 = 1000.0;
const TIMELINE_ROW: f64 = 22.0;

fn offset(from: DateTime<Utc>, at: DateTime<Utc>, span_ms: f64) -> f64 {
    ((at - from).num_milliseconds().max(0) as f64 / span_ms * TIMELINE_WIDTH).min(TIMELINE_WIDTH)
}

/// Each attempt as a bar from its start to its end on one time axis from the task's
/// creation, and as a table row with its outcome and error.
fn attempt_timeline(view: &ExecutionView, attempts: &[AttemptView]) -> Markup {
    let now = Utc::now();
    let start = view.created_at;
    let end = attempts
        .iter()
        .map(|a| a.finished_at.unwrap_or(now))
        .chain(view.completed_at)
        .max()
        .unwrap_or(now);
    let span_ms = ((end - start).num_milliseconds().max(1)) as f64;
    let height = TIMELINE_ROW * attempts.len().max(1) as f64;
    html! {
        h3 { "Attempts" }
        @if attempts.is_empty() {
            p { "No attempt has started yet." }
        } @else {
            svg.timeline viewBox={ "0 0 " (TIMELINE_WIDTH) " " (height) } preserveAspectRatio="none" height=(height)
                role="img" aria-label={ (attempts.len()) " attempts over " (span_ms as i64) " ms since creation" } {
                @for (row, attempt) in attempts.iter().enumerate() {
                    @let x = offset(start, attempt.started_at, span_ms);
                    @let x_end = offset(start, attempt.finished_at.unwrap_or(now), span_ms);
                    rect class={ "bar outcome-" (attempt.outcome.as_deref().unwrap_or("running").to_ascii_lowercase()) }
                        x=(x) y=(row as f64 * TIMELINE_ROW + 3.0) width=((x_end - x).max(2.0)) height=(TIMELINE_ROW - 6.0) {}
                }
            }
            div.table-wrap {
                table.attempts {
                    caption { "Every attempt, oldest first" }
                    thead { tr {
                        th scope="col" { "#" } th scope="col" { "Outcome" } th scope="col" { "Started" }
                        th scope="col" { "Queued" } th scope="col" { "Ran" } th scope="col" .wide { "Worker" } th scope="col" { "Error" }
                    } }
                    tbody {
                        @for attempt in attempts {
                            tr {
                                td { (attempt.attempt) }
                                td { (layout::status(attempt.outcome.as_deref().unwrap_or("RUNNING"))) }
                                td { (layout::time(Some(attempt.started_at))) }
                                td { (layout::millis(attempt.queue_ms)) }
                                td { (layout::millis(attempt.run_ms)) }
                                td.wide { (attempt.worker_id) }
                                td.error-text { (attempt.error.as_deref().unwrap_or("")) }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn event_history(events: &[StoredEvent]) -> Markup {
    html! {
        h3 { "Event history" }
        @if events.is_empty() {
            p { "No event yet (TaskPilot follows the scheduler's change feed)." }
        } @else {
            ol.history {
                @for event in events {
                    li {
                        (layout::time(Some(event.at))) " " strong { (event.kind) } " attempt " (event.attempt)
                        " → " (layout::status(&event.status))
                        @if let Some(error) = &event.error { " " span.error-text { (error) } }
                    }
                }
            }
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct BindForm {
    scheduler_type: String,
}

/// `POST /ui/tasks/{id}/bind`: binds, then loads the page again.
pub(super) async fn bind(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
    form: web::Json<BindForm>,
    context: RequestContext,
) -> Result<HttpResponse, PageError> {
    let id = parse_web_task_id(&id)?;
    state
        .links
        .bind(&principal.tenant, id, form.into_inner().scheduler_type, &context)
        .await
        .map_err(ApiError::from)?;
    Ok(load_page(&format!("/ui/tasks/{id}")))
}

/// `POST /ui/tasks/{id}/cancel`: forwards the cancel, then loads the page again.
pub(super) async fn cancel(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
    context: RequestContext,
) -> Result<HttpResponse, PageError> {
    let id = parse_web_task_id(&id)?;
    state
        .links
        .cancel(&principal.tenant, id, &context)
        .await
        .map_err(ApiError::from)?;
    Ok(load_page(&format!("/ui/tasks/{id}")))
}
