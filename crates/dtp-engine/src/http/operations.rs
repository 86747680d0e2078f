//! Operational endpoints: `/readyz` (the database answers and every migration is applied)
//! and `/metrics` (Prometheus). `/healthz` stays I/O-free and lives with the API routes.

use std::sync::Arc;

use actix_web::middleware::from_fn;
use actix_web::{web, HttpResponse};
use serde_json::Map;
use service_http::metrics::MetricsRegistry;
use service_http::probes::{self, OperationalRoutes};
use service_postgres::{readiness, PgPool};

use crate::metrics::{EngineMetrics, SlotLabels, TypeLabels, TypeStatusLabels};
use crate::startup::MIGRATIONS;
use crate::store::{self, task_stats};
use crate::worker::Worker;

pub struct Operations {
    pub pool: PgPool,
    pub worker: Worker,
    /// External types, whose RUNNING tasks are leases held by workers.
    pub external_types: Vec<String>,
    pub metrics: Arc<EngineMetrics>,
    pub registry: MetricsRegistry,
    /// `/openapi.json`, built once at start-up for this engine's task types.
    pub api_description: serde_json::Value,
}

pub fn configure(cfg: &mut web::ServiceConfig, operations: web::Data<Operations>) {
    cfg.app_data(operations);
    let routes = OperationalRoutes {
        readyz: web::get().to(readyz),
        metrics: web::get().to(metrics),
        openapi_json: web::get().to(openapi_json),
        docs: web::get().to(docs),
    };
    probes::configure_operations(cfg, routes, |resource| {
        resource.wrap(from_fn(super::auth::require_operations))
    });
}

#[utoipa::path(
    get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Database answers and migrations are applied", body = Object,
            example = json!({"status": "ready", "database": "ok", "migrations": "applied"})),
        (status = 503, description = "Not ready", body = Object,
            example = json!({"status": "not_ready", "database": "unavailable", "migrations": "unknown"})),
    )
)]
/// `GET /readyz`: 200 when the database answers and no migration is pending, else 503.
pub async fn readyz(ops: web::Data<Operations>) -> HttpResponse {
    probes::readiness_answer(readiness::check(&ops.pool, MIGRATIONS).await, Map::new())
}

#[utoipa::path(
    get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus metrics (OpenMetrics text)", body = String,
        content_type = "application/openmetrics-text"))
)]
/// `GET /metrics`: refreshes the scrape-time gauges, then encodes every metric.
pub async fn metrics(ops: web::Data<Operations>) -> HttpResponse {
    let (busy, total) = ops.worker.slot_usage();
    let slots = &ops.metrics.worker_slots;
    slots
        .get_or_create(&SlotLabels { state: "busy" })
        .set(i64::try_from(busy).unwrap_or(i64::MAX));
    slots
        .get_or_create(&SlotLabels { state: "total" })
        .set(i64::try_from(total).unwrap_or(i64::MAX));
    let live = store::run(&ops.pool, |conn| {
        Ok((
            task_stats::count_live_tasks(conn)?,
            task_stats::oldest_due_pending_age(conn)?,
        ))
    })
    .await;
    match live {
        Ok((counts, oldest_age)) => {
            ops.metrics.live_tasks.clear();
            ops.metrics.leases_active.clear();
            for count in &counts {
                if count.status == "RUNNING" && ops.external_types.contains(&count.task_type) {
                    ops.metrics
                        .leases_active
                        .get_or_create(&TypeLabels {
                            r#type: count.task_type.clone(),
                        })
                        .set(count.count);
                }
            }
            for count in counts {
                ops.metrics
                    .live_tasks
                    .get_or_create(&TypeStatusLabels {
                        r#type: count.task_type,
                        status: count.status,
                    })
                    .set(count.count);
            }
            ops.metrics.oldest_due_pending_age.set(oldest_age);
        }
        // Serve the process's own metrics anyway; the gauges keep their last values.
        Err(e) => tracing::warn!(error = %e, "could not refresh task gauges"),
    }
    ops.registry.exposition()
}

/// The engine's API description, generated from the handlers' annotations.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "DTP engine", description = "The Distributed Task Platform's execution engine: submit, read and cancel tasks."),
    paths(
        super::tasks::create_task,
        super::tasks::create_task_batch,
        super::tasks::list_tasks,
        super::tasks::get_task,
        super::tasks::cancel_task,
        super::tasks::list_attempts,
        super::task_types::list_task_types,
        super::events::read_events,
        super::leases::lease,
        super::leases::heartbeat,
        super::leases::complete,
        super::leases::fail,
        super::leases::release,
        service_http::probes::healthz,
        readyz,
        metrics,
        openapi_json,
        docs,
    ),
    tags(
        (name = "tasks", description = "Tasks and their attempts"),
        (name = "workers", description = "Workers outside the engine lease tasks of external types"),
        (name = "events", description = "The change feed: every change of every task's state, in order"),
        (name = "operations", description = "Probes and metrics")
    )
)]
pub struct EngineApiDoc;

impl EngineApiDoc {
    /// The description with `type` limited to the task types this engine runs, and a lease
    /// request's `types` to its external ones: which types exist is decided by the
    /// registrations at start-up, not at compile time.
    /// A lease request's `waitMs` is bounded by the engine's `max_wait_ms` (a read of the feed
    /// takes up to 30 s and waits at most `max_wait_ms`).
    pub fn for_task_types(
        task_types: &[String],
        external_types: &[String],
        max_wait_ms: i32,
    ) -> serde_json::Value {
        let mut description = serde_json::to_value(<Self as utoipa::OpenApi>::openapi())
            .unwrap_or_else(|e| unreachable!("an OpenAPI document always serializes: {e}"));
        let schemas = &mut description["components"]["schemas"];
        schemas["CreateTaskRequest"]["properties"]["type"]["enum"] = serde_json::json!(task_types);
        let lease = &mut schemas["LeaseRequest"];
        lease["properties"]["types"]["items"]["enum"] = serde_json::json!(external_types);
        lease["properties"]["types"]["uniqueItems"] = serde_json::json!(true);
        lease["properties"]["waitMs"]["maximum"] = serde_json::json!(max_wait_ms);
        lease["example"]["waitMs"] = serde_json::json!(max_wait_ms.min(20_000));
        match external_types.first() {
            Some(first) => lease["example"]["types"] = serde_json::json!([first]),
            None => {
                if let Some(schema) = lease.as_object_mut() {
                    schema.remove("example");
                }
            }
        }
        service_http::openapi::require_bearer(
            &mut description,
            "A service token of the role the operation needs (submitter, worker or admin)",
            &["/healthz", "/readyz"],
        );
        description
    }
}

#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "This OpenAPI description", body = Object)))]
/// `GET /openapi.json`.
pub async fn openapi_json(ops: web::Data<Operations>) -> HttpResponse {
    HttpResponse::Ok().json(&ops.api_description)
}

#[utoipa::path(get, path = "/docs", tag = "operations",
    responses((status = 200, description = "Browsable API documentation", body = String, content_type = "text/html")))]
/// `GET /docs`: a browsable view of `/openapi.json`.
pub async fn docs() -> HttpResponse {
    service_http::api_docs::page("DTP engine")
}
