//! The engine's HTTP surface: routes, shared state and error mapping. Handlers validate,
//! ask the domain what to do, and call the store; they never hold a transaction.

pub mod auth;
pub mod error;
pub mod events;
mod leases;
pub mod operations;
mod task_types;
mod tasks;

use std::sync::Arc;

use actix_web::middleware::from_fn;
use actix_web::web;
use service_http::http_errors;
use service_http::page_cursor::CursorKey;
use service_http::rate_limit::RateLimiter;

use crate::change_feed::ChangeFeed;
use crate::leasing::WorkerLeases;
use crate::store::tasks::Tasks;
use crate::task_types::TaskTypeRegistry;
use crate::worker::Worker;

/// What every handler can reach.
pub struct AppState {
    pub registry: Arc<TaskTypeRegistry>,
    pub worker: Worker,
    /// The engine's tasks: reads, submissions, listings, cancels.
    pub tasks: Tasks,
    /// The worker API's use cases.
    pub leases: WorkerLeases,
    /// Reads the change feed (`GET /events`).
    pub feed: ChangeFeed,
    /// Seals the cursors of `GET /tasks`.
    pub cursor_key: CursorKey,
    /// Each token's quota (also charged by `require_*` for every request).
    pub rate_limiter: RateLimiter,
}

/// Registers every route of the engine, each group behind the access it requires.
pub fn configure(cfg: &mut web::ServiceConfig, state: web::Data<AppState>, max_body_bytes: usize) {
    let tasks = || from_fn(auth::require_tasks);
    let leases = || from_fn(auth::require_leases);
    cfg.app_data(state)
        .app_data(http_errors::json_config(max_body_bytes))
        .app_data(http_errors::path_config())
        .app_data(http_errors::query_config())
        .service(
            web::resource("/tasks")
                .wrap(tasks())
                .route(web::post().to(tasks::create_task))
                .route(web::get().to(tasks::list_tasks)),
        )
        .service(
            web::resource("/tasks/batch")
                .wrap(tasks())
                .route(web::post().to(tasks::create_task_batch)),
        )
        .service(
            web::resource("/tasks/{id}")
                .wrap(tasks())
                .route(web::get().to(tasks::get_task)),
        )
        .service(
            web::resource("/tasks/{id}/cancel")
                .wrap(tasks())
                .route(web::put().to(tasks::cancel_task)),
        )
        .service(
            web::resource("/tasks/{id}/attempts")
                .wrap(tasks())
                .route(web::get().to(tasks::list_attempts)),
        )
        .service(
            web::resource("/events")
                .wrap(tasks())
                .route(web::get().to(events::read_events)),
        )
        .service(
            web::resource("/task-types")
                .wrap(tasks())
                .route(web::get().to(task_types::list_task_types)),
        )
        .service(
            web::resource("/leases")
                .wrap(leases())
                .route(web::post().to(leases::lease)),
        )
        .service(
            web::resource("/leases/{token}/heartbeat")
                .wrap(leases())
                .route(web::post().to(leases::heartbeat)),
        )
        .service(
            web::resource("/leases/{token}/complete")
                .wrap(leases())
                .route(web::post().to(leases::complete)),
        )
        .service(
            web::resource("/leases/{token}/fail")
                .wrap(leases())
                .route(web::post().to(leases::fail)),
        )
        .service(
            web::resource("/leases/{token}/release")
                .wrap(leases())
                .route(web::post().to(leases::release)),
        )
        .service(web::resource("/healthz").route(web::get().to(service_http::probes::healthz)));
}
