//! The engine's HTTP surface: routes, shared state and error mapping. Handlers validate,
//! ask the domain what to do, and call the store; they never hold a transaction.

pub mod client_socket;
pub mod error;
mod leases;
pub mod operations;
mod task_types;
mod tasks;

use std::sync::Arc;

use actix_web::web;
use service_runtime::{http_errors, PgPool};

use crate::leasing::WorkerLeases;
use crate::submission::TaskSubmitter;
use crate::task_reader::TaskReader;
use crate::task_types::TaskTypeRegistry;
use crate::worker::Worker;

/// What every handler can reach.
pub struct AppState {
    pub pool: PgPool,
    pub registry: Arc<TaskTypeRegistry>,
    pub worker: Worker,
    /// Inserts single submissions, grouped with those arriving at the same time.
    pub submitter: TaskSubmitter,
    /// Reads single tasks, grouped with the reads arriving at the same time.
    pub reader: TaskReader,
    /// The worker API's use cases.
    pub leases: WorkerLeases,
}

/// Registers every route of the engine.
pub fn configure(cfg: &mut web::ServiceConfig, state: web::Data<AppState>, max_body_bytes: usize) {
    cfg.app_data(state)
        .app_data(http_errors::json_config(max_body_bytes))
        .app_data(http_errors::path_config())
        .app_data(http_errors::query_config())
        .service(
            web::resource("/tasks")
                .route(web::post().to(tasks::create_task))
                .route(web::get().to(tasks::list_tasks)),
        )
        .service(web::resource("/tasks/batch").route(web::post().to(tasks::create_task_batch)))
        .service(web::resource("/tasks/{id}").route(web::get().to(tasks::get_task)))
        .service(web::resource("/tasks/{id}/cancel").route(web::put().to(tasks::cancel_task)))
        .service(web::resource("/tasks/{id}/attempts").route(web::get().to(tasks::list_attempts)))
        .service(web::resource("/task-types").route(web::get().to(task_types::list_task_types)))
        .service(web::resource("/leases").route(web::post().to(leases::lease)))
        .service(web::resource("/leases/{token}/heartbeat").route(web::post().to(leases::heartbeat)))
        .service(web::resource("/leases/{token}/complete").route(web::post().to(leases::complete)))
        .service(web::resource("/leases/{token}/fail").route(web::post().to(leases::fail)))
        .service(web::resource("/leases/{token}/release").route(web::post().to(leases::release)))
        .service(web::resource("/healthz").route(web::get().to(tasks::healthz)));
}
