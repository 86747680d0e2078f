//! Operational endpoints: `/readyz` (own database and migrations; the scheduler's state is
//! reported but does not fail readiness, since TaskPilot still serves its own records) and
//! `/metrics` (Prometheus); `/openapi.json` and `/docs` describe the whole API.

use actix_web::middleware::{from_fn, Condition};
use actix_web::{web, HttpResponse};
use serde_json::Map;
use service_http::metrics::MetricsRegistry;
use service_http::probes::{self, OperationalRoutes};
use service_postgres::{readiness, PgPool};

use crate::domain::api_key::Scope;
use crate::scheduler_client::SchedulerClient;
use crate::startup::MIGRATIONS;

pub struct Operations {
    pub pool: PgPool,
    pub scheduler: SchedulerClient,
    pub registry: MetricsRegistry,
}

/// The probes are open; `/metrics`, `/openapi.json` and `/docs` need an admin key unless
/// `public_ops` (`TASKPILOT_PUBLIC_OPS=true`).
pub fn configure(cfg: &mut web::ServiceConfig, operations: web::Data<Operations>, public_ops: bool) {
    cfg.app_data(operations);
    let routes = OperationalRoutes {
        readyz: web::get().to(readyz),
        metrics: web::get().to(metrics),
        openapi_json: web::get().to(openapi_json),
        docs: web::get().to(docs),
    };
    probes::configure_operations(cfg, routes, |resource| {
        resource.wrap(Condition::new(!public_ops, from_fn(super::auth::require_admin)))
    });
}

#[utoipa::path(
    get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "TaskPilot's database answers and its migrations are applied; \
            `scheduler` reports whether DTP answers, without failing readiness", body = Object,
            example = json!({"status": "ready", "database": "ok", "migrations": "applied", "scheduler": "ok"})),
        (status = 503, description = "Not ready", body = Object,
            example = json!({"status": "not_ready", "database": "unavailable", "migrations": "unknown", "scheduler": "ok"})),
    )
)]
/// `GET /readyz`: 200 when our database answers and no migration is pending, else 503.
pub async fn readyz(ops: web::Data<Operations>) -> HttpResponse {
    let database = readiness::check(&ops.pool, MIGRATIONS).await;
    let scheduler = if ops.scheduler.answers().await {
        "ok"
    } else {
        "unreachable"
    };
    let mut reported = Map::new();
    reported.insert("scheduler".into(), scheduler.into());
    probes::readiness_answer(database, reported)
}

#[utoipa::path(
    get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus metrics (OpenMetrics text)", body = String,
        content_type = "application/openmetrics-text"))
)]
/// `GET /metrics`.
pub async fn metrics(ops: web::Data<Operations>) -> HttpResponse {
    ops.registry.exposition()
}

/// TaskPilot's API description, generated from the handlers' annotations.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "TaskPilot", description = "The web control plane over the DTP engine: create web tasks, \
        bind them to the scheduler exactly once, read their execution and cancel it."),
    paths(
        super::tasks::create_web_task,
        super::tasks::list_web_tasks,
        super::tasks::get_web_task,
        super::execution::bind_to_scheduler,
        super::execution::get_execution,
        super::execution::cancel_execution,
        super::events::web_task_events,
        super::events::tenant_events,
        super::keys::create_key,
        super::keys::list_keys,
        super::keys::revoke_key,
        service_http::probes::healthz,
        readyz,
        metrics,
        openapi_json,
        docs,
    ),
    tags(
        (name = "web tasks", description = "The user-facing task records TaskPilot owns"),
        (name = "execution", description = "Binding to the scheduler, the execution view, cancel and live events"),
        (name = "keys", description = "API keys of the caller's tenant (admin scope)"),
        (name = "operations", description = "Probes, metrics and this description"),
    )
)]
pub struct TaskPilotApiDoc;

#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "This OpenAPI description", body = Object)))]
/// `GET /openapi.json`.
pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok().json(TaskPilotApiDoc::description())
}

impl TaskPilotApiDoc {
    /// The description, with the API key every operation but the probes needs.
    pub fn description() -> serde_json::Value {
        let mut description = serde_json::to_value(<Self as utoipa::OpenApi>::openapi())
            .unwrap_or_else(|e| unreachable!("an OpenAPI document always serializes: {e}"));
        let scopes = &mut description["components"]["schemas"]["CreateKeyRequest"]["properties"]["scopes"];
        scopes["items"]["enum"] = serde_json::json!(Scope::ALL.map(Scope::as_str));
        scopes["uniqueItems"] = serde_json::json!(true);
        service_http::openapi::require_bearer(
            &mut description,
            "An API key, tp_<id>_<secret>, with the scope the operation needs",
            &["/healthz", "/readyz"],
        );
        description
    }
}

#[utoipa::path(get, path = "/docs", tag = "operations",
    responses((status = 200, description = "Browsable API documentation", body = String, content_type = "text/html")))]
/// `GET /docs`: a browsable view of `/openapi.json`.
pub async fn docs() -> HttpResponse {
    service_http::api_docs::page("TaskPilot")
}
