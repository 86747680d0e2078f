//! The Tasks page: the tenant's web tasks, newest first, filtered and paged as
//! `GET /api/tasks` does, with rows kept live from the tenant's event stream; creating a task
//! (and binding it at once); finding one by id.

use actix_web::http::header::LOCATION;
use actix_web::{web, HttpRequest, HttpResponse};
use dtp_contract::{TaskStatus, TaskTypeInfo};
use maud::{html, Markup};
use serde::Deserialize;
use service_http::request_trace::RequestContext;

use super::layout::{self, page, Section, Viewer};
use super::{html_page, is_partial, load_page, PageError};
use crate::domain::api_key::Principal;
use crate::domain::WebTaskStatus;
use crate::http::error::{parse_web_task_id, ApiError};
use crate::http::tasks::{self, ListQuery, WebTaskResponse};
use crate::http::AppState;

/// Web tasks per page of the dashboard's list.
const PAGE_SIZE: i64 = 25;

/// The list's filters as the filter form sends them: empty fields mean "any".
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct TaskFilter {
    status: Option<String>,
    execution_status: Option<String>,
    #[serde(rename = "type")]
    task_type: Option<String>,
    bound: Option<String>,
    /// `YYYY-MM-DDTHH:MM` in UTC (a `datetime-local` field), or an RFC 3339 time.
    created_from: Option<String>,
    created_before: Option<String>,
    cursor: Option<String>,
}

fn filled(field: &Option<String>) -> Option<String> {
    field
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// A form's time as RFC 3339: a `datetime-local` value has no zone, and the form says UTC.
fn as_rfc3339(field: &Option<String>) -> Option<String> {
    filled(field).map(|value| match value.len() {
        16 => format!("{value}:00Z"),
        19 => format!("{value}Z"),
        _ => value,
    })
}

impl TaskFilter {
    /// The same query the API's list takes.
    pub(super) fn list_query(&self, limit: i64) -> ListQuery {
        ListQuery {
            status: filled(&self.status),
            task_type: filled(&self.task_type),
            bound: filled(&self.bound),
            execution_status: filled(&self.execution_status),
            created_from: as_rfc3339(&self.created_from),
            created_before: as_rfc3339(&self.created_before),
            limit: Some(limit),
            cursor: filled(&self.cursor),
        }
    }

    /// The filters (not the page) as a query string, for links that keep them.
    fn query_string(&self) -> String {
        let fields = [
            ("status", &self.status),
            ("executionStatus", &self.execution_status),
            ("type", &self.task_type),
            ("bound", &self.bound),
            ("createdFrom", &self.created_from),
            ("createdBefore", &self.created_before),
        ];
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (name, value) in fields {
            if let Some(value) = filled(value) {
                query.append_pair(name, &value);
            }
        }
        query.finish()
    }
}

/// The scheduler's task types, or `None` when it cannot say (the form then takes a name).
pub(super) async fn registered_types(
    state: &AppState,
    context: &RequestContext,
) -> Option<Vec<TaskTypeInfo>> {
    match state.scheduler.task_types(context).await {
        Ok(list) => Some(list.types),
        Err(e) => {
            tracing::warn!(error = %e, "cannot list the scheduler's task types");
            None
        }
    }
}

/// A choice of scheduler type: the registered ones, or a text field when unknown.
pub(super) fn type_choice(types: Option<&[TaskTypeInfo]>, id: &str, optional: bool) -> Markup {
    html! {
        @match types {
            Some(types) => {
                select id=(id) name="schedulerType" required[!optional] {
                    @if optional { option value="" { "— do not bind yet —" } }
                    @for t in types {
                        option value=(t.name) { (t.name) " (" (format!("{:?}", t.kind).to_lowercase()) ")" }
                    }
                }
            }
            None => {
                input id=(id) name="schedulerType" type="text" maxlength="100" required[!optional]
                    placeholder="demo";
                small { " The scheduler did not list its types; type one." }
            }
        }
    }
}

fn select_of(name: &str, label: &str, current: Option<&str>, values: &[&str]) -> Markup {
    html! {
        div.field {
            label for=(name) { (label) }
            select id=(name) name=(name) {
                option value="" selected[current.is_none()] { "any" }
                @for value in values {
                    option value=(value) selected[current == Some(*value)] { (value) }
                }
            }
        }
    }
}

fn filter_form(filter: &TaskFilter) -> Markup {
    let web_statuses = WebTaskStatus::ALL.map(WebTaskStatus::as_str);
    let execution_statuses = TaskStatus::ALL.map(TaskStatus::as_str);
    html! {
        form #filters.filters method="get" action="/ui" aria-label="Filter tasks" {
            (select_of("status", "Web status", filled(&filter.status).as_deref(), &web_statuses))
            (select_of("executionStatus", "Execution status", filled(&filter.execution_status).as_deref(), &execution_statuses))
            div.field {
                label for="type" { "Type" }
                input #type name="type" type="text" maxlength="100" value=[filled(&filter.task_type)];
            }
            (select_of("bound", "Bound", filled(&filter.bound).as_deref(), &["true", "false"]))
            div.field {
                label for="createdFrom" { "Created from (UTC)" }
                input #createdFrom name="createdFrom" type="datetime-local" value=[filled(&filter.created_from)];
            }
            div.field {
                label for="createdBefore" { "Created before (UTC)" }
                input #createdBefore name="createdBefore" type="datetime-local" value=[filled(&filter.created_before)];
            }
            div.actions {
                button type="submit" { "Apply filters" }
                a href="/ui" { "Clear" }
            }
        }
    }
}

/// One row of the list; `GET /ui/tasks/{id}/row` renders it again when an event arrives.
fn task_row(task: &WebTaskResponse) -> Markup {
    let execution = task.execution.as_ref();
    html! {
        tr id={ "task-" (task.id) } data-task-id=(task.id) {
            td { a href={ "/ui/tasks/" (task.id) } { "#" (task.id) } }
            td { (task.task_type) }
            td.wide { (layout::status(task.status)) }
            td.wide { (task.scheduler_type.as_deref().unwrap_or("—")) }
            td.execution-status {
                @match execution {
                    Some(e) => (layout::status(e.status.as_str())),
                    None => span.none { "—" },
                }
            }
            td.wide { (execution.map(|e| e.attempt_count.to_string()).unwrap_or_else(|| "—".into())) }
            td.wide { (layout::time(Some(task.created_at))) }
        }
    }
}

fn create_form(types: Option<&[TaskTypeInfo]>) -> Markup {
    html! {
        details.create {
            summary { "New task" }
            form hx-post="/ui/tasks" hx-target="#create-error" hx-swap="innerHTML" aria-label="New task" {
                div.field {
                    label for="new-type" { "Type" }
                    input #new-type name="type" type="text" maxlength="100" required placeholder="report";
                }
                div.field.grow {
                    label for="new-payload" { "Payload (JSON)" }
                    textarea #new-payload name="payload" rows="3" spellcheck="false" { "{}" }
                }
                div.field {
                    label for="new-scheduler-type" { "Bind to" }
                    (type_choice(types, "new-scheduler-type", true))
                }
                div.actions { button type="submit" { "Create" } }
                div #create-error aria-live="assertive" {}
            }
        }
    }
}

/// `GET /ui`: the Tasks page.
pub(super) async fn tasks_page(
    state: web::Data<AppState>,
    principal: Principal,
    filter: web::Query<TaskFilter>,
    context: RequestContext,
) -> Result<HttpResponse, PageError> {
    let filter = filter.into_inner();
    let viewer = Viewer::of(&principal);
    let listed = tasks::list(&state, principal, filter.list_query(PAGE_SIZE)).await;
    let types = if viewer.can_write {
        registered_types(&state, &context).await
    } else {
        None
    };
    let filters = filter.query_string();
    let body = html! {
        div.heading {
            h1 { "Tasks" }
            form.search method="get" action="/ui/search" role="search" {
                label for="search-id" { "Find task by id" }
                input #search-id name="id" type="number" min="1" required;
                button type="submit" { "Go" }
            }
        }
        @if viewer.can_write { (create_form(types.as_deref())) }
        (filter_form(&filter))
        @if viewer.can_write {
            div.bulk {
                button type="button" hx-get="/ui/bulk-cancel" hx-include="#filters" hx-target="#bulk" {
                    "Cancel all matching…"
                }
                div #bulk aria-live="polite" {}
            }
        }
        @match &listed {
            Err(e) => div.alert role="alert" { strong { (e.code()) } " " (e.to_string()) },
            Ok(listing) => {
                p #new-tasks role="status" hidden {
                    "Tasks were bound since this page was loaded: "
                    a href={ "/ui?" (filters) } { "show the newest" }
                }
                div.table-wrap {
                    table.tasks data-live-rows="/ui/events" {
                        caption { "Web tasks, newest first; rows update as their executions change." }
                        thead { tr {
                            th scope="col" { "Id" } th scope="col" { "Type" } th scope="col" .wide { "Web status" }
                            th scope="col" .wide { "Scheduler type" } th scope="col" { "Execution" }
                            th scope="col" .wide { "Attempts" } th scope="col" .wide { "Created (UTC)" }
                        } }
                        tbody #task-rows {
                            @for task in &listing.items { (task_row(task)) }
                            @if listing.items.is_empty() {
                                tr { td colspan="7" { "No tasks match these filters." } }
                            }
                        }
                    }
                }
                @if let Some(cursor) = &listing.next_cursor {
                    nav.pager aria-label="Pages" {
                        a href={ "/ui?" (filters) @if !filters.is_empty() { "&" } "cursor=" (cursor) } { "Older tasks →" }
                    }
                }
            }
        }
    };
    let status = match &listed {
        Err(e) => actix_web::ResponseError::status_code(e),
        Ok(_) => actix_web::http::StatusCode::OK,
    };
    let mut response = html_page(page("Tasks", Section::Tasks, Some(&viewer), body));
    *response.status_mut() = status;
    Ok(response)
}

/// `GET /ui/tasks/{id}/row`.
pub(super) async fn row(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let id = parse_web_task_id(&id)?;
    let stored = tasks::web_task_of(&state, &principal, id).await?;
    Ok(html_page(task_row(&WebTaskResponse::from_stored(stored)?)))
}

#[derive(Deserialize)]
pub(super) struct SearchQuery {
    id: String,
}

/// `GET /ui/search?id=`: to that task's page.
pub(super) async fn search(query: web::Query<SearchQuery>) -> Result<HttpResponse, PageError> {
    let id = parse_web_task_id(query.id.trim())?;
    Ok(HttpResponse::SeeOther()
        .insert_header((LOCATION, format!("/ui/tasks/{id}")))
        .finish())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct NewTaskForm {
    #[serde(rename = "type")]
    task_type: String,
    payload: String,
    scheduler_type: Option<String>,
}

/// `POST /ui/tasks`: creates the task, binds it if a type was chosen, and opens its page.
pub(super) async fn create(
    state: web::Data<AppState>,
    principal: Principal,
    form: web::Json<NewTaskForm>,
    context: RequestContext,
    request: HttpRequest,
) -> Result<HttpResponse, PageError> {
    let form = form.into_inner();
    let payload = match form.payload.trim() {
        "" => serde_json::Value::Null,
        text => serde_json::from_str(text).map_err(|e| ApiError::BadRequest {
            code: "INVALID_PAYLOAD",
            message: format!("the payload is not JSON: {e}"),
        })?,
    };
    let row = tasks::create(&state, &principal, form.task_type, payload).await?;
    if let Some(scheduler_type) = filled(&form.scheduler_type) {
        let bound = state
            .links
            .bind(&principal.tenant, row.id, scheduler_type, &context)
            .await;
        if let Err(e) = bound.map_err(ApiError::from) {
            let alert = html! {
                div.alert role="alert" {
                    strong { (e.code()) } " " (e.to_string()) ". "
                    "Task " a href={ "/ui/tasks/" (row.id) } { "#" (row.id) } " was created and is not bound."
                }
            };
            let mut response = html_page(alert);
            *response.status_mut() = actix_web::ResponseError::status_code(&e);
            return Ok(response);
        }
    }
    let location = format!("/ui/tasks/{}", row.id);
    Ok(if is_partial(&request) {
        load_page(&location)
    } else {
        HttpResponse::SeeOther()
            .insert_header((LOCATION, location))
            .finish()
    })
}
