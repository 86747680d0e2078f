//! Operational endpoints: `/readyz` (own database and migrations; the scheduler's state is
//! reported but does not fail readiness, since TaskPilot still serves its own records) and
//! `/metrics` (Prometheus).

use actix_web::{web, HttpResponse};
use diesel_migrations::MigrationHarness;
use serde_json::json;
use service_runtime::metrics::MetricsRegistry;
use service_runtime::PgPool;

use crate::scheduler_client::SchedulerClient;
use crate::startup::MIGRATIONS;
use crate::store;

pub struct Operations {
    pub pool: PgPool,
    pub scheduler: SchedulerClient,
    pub registry: MetricsRegistry,
}

pub fn configure(cfg: &mut web::ServiceConfig, operations: web::Data<Operations>) {
    cfg.app_data(operations)
        .service(web::resource("/readyz").route(web::get().to(readyz)))
        .service(web::resource("/metrics").route(web::get().to(metrics)));
}

/// `GET /readyz`: 200 when our database answers and no migration is pending, else 503.
pub async fn readyz(ops: web::Data<Operations>) -> HttpResponse {
    let database = store::run(&ops.pool, |conn| {
        diesel::RunQueryDsl::execute(diesel::sql_query("SELECT 1"), conn)?;
        conn.has_pending_migration(MIGRATIONS)
            .map_err(|e| diesel::result::Error::QueryBuilderError(e.to_string().into()))
    })
    .await;
    let scheduler = if ops.scheduler.answers().await {
        "ok"
    } else {
        "unreachable"
    };
    match database {
        Ok(false) => HttpResponse::Ok().json(
            json!({"status": "ready", "database": "ok", "migrations": "applied", "scheduler": scheduler}),
        ),
        Ok(true) => HttpResponse::ServiceUnavailable().json(
            json!({"status": "not_ready", "database": "ok", "migrations": "pending", "scheduler": scheduler}),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            HttpResponse::ServiceUnavailable().json(
                json!({"status": "not_ready", "database": "unavailable", "migrations": "unknown", "scheduler": scheduler}),
            )
        }
    }
}

/// `GET /metrics`.
pub async fn metrics(ops: web::Data<Operations>) -> HttpResponse {
    ops.registry.exposition()
}
