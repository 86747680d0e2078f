//! `/events`: the change feed, one page per call, long-polled with `waitMs`.

use actix_web::{web, HttpRequest, HttpResponse};
use dtp_contract::{ErrorBody, EventPage};
use serde::Deserialize;
use service_http::connections::ClientSocket;
use service_http::http_errors::shown;

use super::error::ApiError;
use super::AppState;
use crate::change_feed::{FeedError, FeedRead};
use crate::domain::access::{Caller, Role};
use crate::domain::feed_position::FeedStart;
use crate::domain::lease::MAX_WAIT_MS;
use crate::domain::task_type::check_type_name;

pub const DEFAULT_EVENTS_PER_PAGE: i64 = 100;
pub const MAX_EVENTS_PER_PAGE: i64 = 1_000;
/// Most task types one read may filter on.
pub const MAX_TYPE_FILTERS: usize = 50;

/// `GET /events` query; unknown parameters are refused.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EventsQuery {
    after: Option<String>,
    limit: Option<i64>,
    wait_ms: Option<i64>,
    types: Option<String>,
}

impl EventsQuery {
    fn validate(self, caller: &Caller, max_wait_ms: i32) -> Result<FeedRead, ApiError> {
        let bad = |code: &'static str, message: String| ApiError::BadRequest { code, message };
        let start =
            FeedStart::parse(self.after.as_deref()).map_err(|e| bad("INVALID_CURSOR", e.to_string()))?;
        let limit = self.limit.unwrap_or(DEFAULT_EVENTS_PER_PAGE);
        if !(1..=MAX_EVENTS_PER_PAGE).contains(&limit) {
            return Err(bad(
                "INVALID_LIMIT",
                format!("limit must be between 1 and {MAX_EVENTS_PER_PAGE}, got {limit}"),
            ));
        }
        let wait_ms = self.wait_ms.unwrap_or(0);
        if !(0..=i64::from(MAX_WAIT_MS)).contains(&wait_ms) {
            return Err(bad(
                "INVALID_WAIT",
                format!("waitMs must be between 0 and {MAX_WAIT_MS}, got {wait_ms}"),
            ));
        }
        // An engine set to wait less than asked (DTP_LEASE_MAX_WAIT_MS) answers sooner.
        let wait_ms = wait_ms.min(i64::from(max_wait_ms));
        let task_types = match self.types.as_deref() {
            None => None,
            Some(list) => {
                let types: Vec<String> = list.split(',').map(str::to_owned).collect();
                if types.len() > MAX_TYPE_FILTERS {
                    return Err(bad(
                        "INVALID_TYPE",
                        format!("types names at most {MAX_TYPE_FILTERS} task types"),
                    ));
                }
                if let Some(invalid) = types.iter().find(|t| check_type_name(t).is_err()) {
                    return Err(bad(
                        "INVALID_TYPE",
                        format!(
                            "types must be task type names separated by commas; {:?} is not one",
                            shown(invalid)
                        ),
                    ));
                }
                Some(types)
            }
        };
        Ok(FeedRead {
            start,
            limit,
            wait: std::time::Duration::from_millis(wait_ms.unsigned_abs()),
            task_types,
            submitted_by: (caller.role != Role::Admin).then(|| caller.name.clone()),
        })
    }
}

#[utoipa::path(
    get, path = "/events", tag = "events",
    params(
        ("after" = Option<String>, Query, pattern = "^([A-Za-z0-9_-]{22}|latest)$",
            description = "`nextCursor` or an event's `cursor` to read on from, or `latest`; without it the \
            feed starts at the oldest event kept"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 1000, description = "Events per page (default 100)"),
        ("waitMs" = Option<i64>, Query, minimum = 0, maximum = 30000,
            description = "With no event to return, wait up to this long for one (default 0); an engine \
            whose DTP_LEASE_MAX_WAIT_MS is lower waits at most that long"),
        ("types" = Option<String>, Query, pattern = "^[A-Za-z0-9._-]{1,100}(,[A-Za-z0-9._-]{1,100}){0,49}$",
            description = "Only events of these task types, separated by commas"),
    ),
    responses(
        (status = 200, description = "Events in feed order; follow `nextCursor`", body = EventPage),
        (status = 400, description = "Unknown parameter, bad cursor, limit, waitMs or types \
            (INVALID_QUERY, INVALID_CURSOR, INVALID_LIMIT, INVALID_WAIT, INVALID_TYPE)", body = ErrorBody),
        (status = 410, description = "The cursor is older than the events kept (CURSOR_EXPIRED): \
            list again, then read from `latest`", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
/// `GET /events?after=&limit=&waitMs=&types=`: what happened to the caller's tasks (every
/// task, for an admin), in order. A reader that follows `nextCursor` sees every event once,
/// each task's in the order they happened.
pub async fn read_events(
    state: web::Data<AppState>,
    request: HttpRequest,
    caller: Caller,
    query: web::Query<EventsQuery>,
) -> Result<HttpResponse, ApiError> {
    let read = query.into_inner().validate(&caller, state.leases.max_wait_ms())?;
    let socket = request.conn_data::<ClientSocket>();
    let client_waits = || socket.is_none_or(ClientSocket::is_open);
    let page = state.feed.read(read, client_waits).await.map_err(|e| match e {
        FeedError::Expired => ApiError::Gone {
            code: "CURSOR_EXPIRED",
            message: e.to_string(),
        },
        FeedError::Store(e) => e.into(),
    })?;
    Ok(HttpResponse::Ok().json(EventPage {
        events: page.events,
        next_cursor: page.next.to_cursor(),
    }))
}
