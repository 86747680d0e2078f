//! TaskPilot's HTTP surface: under `/api` web tasks, their binding to the scheduler, the
//! execution view and live event streams; under `/ui` the dashboard over the same flows.
//! Handlers never hold a transaction across a scheduler call.

pub mod auth;
mod dashboard;
pub mod error;
pub mod events;
mod execution;
mod keys;
pub mod operations;
mod tasks;

use actix_web::middleware::from_fn;
use actix_web::web;
use service_http::http_errors;
use service_http::page_cursor::CursorKey;
use service_postgres::PgPool;

use crate::api_keys::ApiKeys;
use crate::event_streams::EventStreams;
use crate::execution_link::ExecutionLinks;
use crate::scheduler_client::SchedulerClient;
use crate::store::web_tasks::WebTasks;
use tokio_util::sync::CancellationToken;

/// The `{id}` of every `/api/tasks/{id}` route, as the API description shows it.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[expect(
    dead_code,
    reason = "describes the path parameter; handlers parse it with parse_web_task_id"
)]
pub struct WebTaskIdParam {
    /// Web task id (positive integer).
    #[param(minimum = 1)]
    id: i64,
}

/// What every handler can reach.
pub struct AppState {
    pub pool: PgPool,
    /// Reads, creates and binds of single web tasks, grouped with those arriving at the same time.
    pub web_tasks: WebTasks,
    pub scheduler: SchedulerClient,
    pub keys: ApiKeys,
    /// The largest body the scheduler takes: a payload that could not be submitted is refused.
    pub scheduler_max_body_bytes: usize,
    /// Seals the cursors of `GET /api/tasks`.
    pub cursor_key: CursorKey,
    /// The live event streams (`/api/events`, `/api/tasks/{id}/events`).
    pub streams: EventStreams,
    /// Fires at shutdown: open event streams end.
    pub shutdown: CancellationToken,
    /// Binds, execution reads and cancels (the use cases of a web task's link to the scheduler).
    pub links: ExecutionLinks,
}

/// Registers every route of TaskPilot, each behind the scope it requires.
pub fn configure(cfg: &mut web::ServiceConfig, state: web::Data<AppState>, max_body_bytes: usize) {
    let read = || from_fn(auth::require_read);
    let write = || from_fn(auth::require_write);
    let admin = || from_fn(auth::require_admin);
    cfg.app_data(state)
        .app_data(http_errors::json_config(max_body_bytes))
        .app_data(http_errors::path_config())
        .app_data(http_errors::query_config())
        .service(
            web::resource("/api/tasks")
                .route(web::post().to(tasks::create_web_task).wrap(write()))
                .route(web::get().to(tasks::list_web_tasks).wrap(read())),
        )
        .service(web::resource("/api/tasks/{id}").route(web::get().to(tasks::get_web_task).wrap(read())))
        .service(
            web::resource("/api/tasks/{id}/scheduler")
                .route(web::post().to(execution::bind_to_scheduler).wrap(write())),
        )
        .service(
            web::resource("/api/tasks/{id}/execution")
                .route(web::get().to(execution::get_execution).wrap(read())),
        )
        .service(
            web::resource("/api/tasks/{id}/events")
                .route(web::get().to(events::web_task_events).wrap(read())),
        )
        .service(web::resource("/api/events").route(web::get().to(events::tenant_events).wrap(read())))
        .service(
            web::resource("/api/tasks/{id}/execution/cancel")
                .route(web::put().to(execution::cancel_execution).wrap(write())),
        )
        .service(
            web::resource("/api/admin/keys")
                .wrap(admin())
                .route(web::post().to(keys::create_key))
                .route(web::get().to(keys::list_keys)),
        )
        .service(
            web::resource("/api/admin/keys/{id}")
                .wrap(admin())
                .route(web::delete().to(keys::revoke_key)),
        )
        .service(web::resource("/healthz").route(web::get().to(service_http::probes::healthz)))
        .configure(dashboard::configure);
}
