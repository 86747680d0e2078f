//! TaskPilot's HTTP surface under `/api`: web tasks, their binding to the scheduler,
//! and the execution view. Handlers never hold a transaction across a scheduler call.

pub mod error;
mod execution;
pub mod operations;
mod tasks;

use actix_web::web;
use service_runtime::{http_errors, PgPool};

use crate::grouped_web_tasks::GroupedWebTasks;
use crate::scheduler_client::SchedulerClient;

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
    pub web_tasks: GroupedWebTasks,
    pub scheduler: SchedulerClient,
    /// Test-only fault point: exit right after the scheduler answered a bind, before our commit.
    pub crash_after_scheduler_create: bool,
}

/// Registers every route of TaskPilot.
pub fn configure(cfg: &mut web::ServiceConfig, state: web::Data<AppState>, max_body_bytes: usize) {
    cfg.app_data(state)
        .app_data(http_errors::json_config(max_body_bytes))
        .app_data(http_errors::path_config())
        .app_data(http_errors::query_config())
        .service(
            web::resource("/api/tasks")
                .route(web::post().to(tasks::create_web_task))
                .route(web::get().to(tasks::list_web_tasks)),
        )
        .service(web::resource("/api/tasks/{id}").route(web::get().to(tasks::get_web_task)))
        .service(
            web::resource("/api/tasks/{id}/scheduler").route(web::post().to(execution::bind_to_scheduler)),
        )
        .service(web::resource("/api/tasks/{id}/execution").route(web::get().to(execution::get_execution)))
        .service(
            web::resource("/api/tasks/{id}/execution/cancel")
                .route(web::put().to(execution::cancel_execution)),
        )
        .service(web::resource("/healthz").route(web::get().to(tasks::healthz)));
}
