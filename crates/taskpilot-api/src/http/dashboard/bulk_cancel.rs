//! Canceling every execution the list's current filter matches: a preview counts what would
//! be canceled; the cancel runs only if the count typed to confirm it is still the count of
//! what matches, so a filter cannot widen between preview and action.

use actix_web::{web, HttpResponse, ResponseError};
use futures_util::{stream, StreamExt};
use maud::html;
use serde::Deserialize;
use service_http::request_trace::RequestContext;

use super::task_list::TaskFilter;
use super::{html_page, PageError};
use crate::domain::api_key::Principal;
use crate::http::error::ApiError;
use crate::http::AppState;

/// The most executions one bulk cancel reaches; a wider filter is refused, to be narrowed.
const BULK_LIMIT: usize = 1000;
/// Cancels in flight at once.
const CANCELS_IN_FLIGHT: usize = 8;

/// The web tasks matching `filter` whose executions a cancel could still reach, ids
/// newest first; `BULK_LIMIT + 1` of them at most.
async fn cancelable(
    state: &AppState,
    principal: &Principal,
    filter: &TaskFilter,
) -> Result<Vec<i64>, ApiError> {
    let mut query = filter.list_query(1);
    query.cursor = None;
    let (mut filter, _) = query.into_filter(principal.tenant.clone(), &state.cursor_key)?;
    filter.unfinished_only = true;
    let rows = state.web_tasks.list(filter, BULK_LIMIT as i64 + 1).await?;
    Ok(rows.into_iter().map(|(row, _)| row.id).collect())
}

/// `GET /ui/bulk-cancel?<filters>`: how many would be canceled, and the confirmation form.
pub(super) async fn preview(
    state: web::Data<AppState>,
    principal: Principal,
    filter: web::Query<TaskFilter>,
) -> Result<HttpResponse, PageError> {
    let filter = filter.into_inner();
    let ids = cancelable(&state, &principal, &filter).await?;
    let count = ids.len();
    let markup = html! {
        @if count == 0 {
            p #bulk-count data-count="0" { "No unfinished execution matches these filters: nothing to cancel." }
        } @else if count > BULK_LIMIT {
            p.alert role="alert" #bulk-count data-count=(count) {
                "More than " (BULK_LIMIT) " unfinished executions match; narrow the filters first."
            }
        } @else {
            form.confirm hx-post="/ui/bulk-cancel" hx-include="#filters" hx-target="#bulk" hx-swap="innerHTML"
                aria-label="Confirm bulk cancel" {
                p #bulk-count data-count=(count) {
                    strong { (count) } " unfinished execution" @if count != 1 { "s" } " match the filters above and would be canceled."
                }
                label for="bulk-confirm" { "Type " strong { (count) } " to confirm" }
                input #bulk-confirm name="confirm" type="text" inputmode="numeric" autocomplete="off" required;
                button.danger type="submit" { "Cancel " (count) " execution" @if count != 1 { "s" } }
            }
        }
    };
    Ok(html_page(markup))
}

#[derive(Deserialize)]
pub(super) struct BulkCancelForm {
    #[serde(flatten)]
    filter: TaskFilter,
    confirm: String,
}

/// `POST /ui/bulk-cancel`: cancels what the filter matches if `confirm` is its count.
pub(super) async fn cancel_matching(
    state: web::Data<AppState>,
    principal: Principal,
    form: web::Json<BulkCancelForm>,
    context: RequestContext,
) -> Result<HttpResponse, PageError> {
    let form = form.into_inner();
    let ids = cancelable(&state, &principal, &form.filter).await?;
    if ids.len() > BULK_LIMIT || form.confirm.trim() != ids.len().to_string() {
        return Err(ApiError::BadRequest {
            code: "CONFIRMATION_MISMATCH",
            message: format!(
                "the filters now match {} unfinished executions, not {:?}: preview again",
                ids.len(),
                form.confirm.trim()
            ),
        }
        .into());
    }
    let outcomes: Vec<Result<(), ApiError>> = stream::iter(ids.iter().copied())
        .map(|id| {
            let (state, principal, context) = (&state, &principal, &context);
            async move {
                state
                    .links
                    .cancel(&principal.tenant, id, context)
                    .await
                    .map_err(ApiError::from)
            }
        })
        .buffer_unordered(CANCELS_IN_FLIGHT)
        .collect()
        .await;
    let canceled = outcomes.iter().filter(|o| o.is_ok()).count();
    let finished = outcomes
        .iter()
        .filter(|o| matches!(o, Err(e) if e.status_code() == actix_web::http::StatusCode::CONFLICT))
        .count();
    let failed: Vec<&ApiError> = outcomes
        .iter()
        .filter_map(|o| o.as_ref().err())
        .filter(|e| e.status_code() != actix_web::http::StatusCode::CONFLICT)
        .collect();
    tracing::info!(
        tenant = %principal.tenant,
        canceled,
        already_finished = finished,
        failed = failed.len(),
        "bulk cancel"
    );
    Ok(html_page(html! {
        p #bulk-done role="status" {
            strong { (canceled) } " canceled"
            @if finished > 0 { ", " (finished) " had already finished" }
            @if !failed.is_empty() { ", " (failed.len()) " failed (first: " (failed[0].code()) " " (failed[0].to_string()) ")" }
            ". " a href="/ui" { "Reload the list" }
        }
    }))
}
