//! The probes both services answer: `/healthz` (the process is up; no I/O) and the body of
//! `/readyz` from what the readiness check of the service's own database found; and where the
//! operational routes (the probes, `/metrics`, `/openapi.json`, `/docs`) are mounted.

use actix_web::dev::HttpServiceFactory;
use actix_web::{web, HttpResponse, Resource, Route};
use serde_json::{json, Map, Value};
use service_postgres::readiness::DatabaseReadiness;

#[utoipa::path(
    get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "The process is up", body = Object, example = json!({"status": "ok"})))
)]
/// `GET /healthz`: the process is up (no I/O).
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// The `/readyz` answer: 200 when the database is ready, 503 otherwise, with `status`,
/// `database` and `migrations`, and then what the service adds in `reported` (it reports,
/// it does not decide readiness).
pub fn readiness_answer(database: DatabaseReadiness, reported: Map<String, Value>) -> HttpResponse {
    let (status, db, migrations) = match database {
        DatabaseReadiness::Ready => ("ready", "ok", "applied"),
        DatabaseReadiness::MigrationsPending => ("not_ready", "ok", "pending"),
        DatabaseReadiness::Unavailable => ("not_ready", "unavailable", "unknown"),
    };
    let mut body = Map::new();
    body.insert("status".into(), status.into());
    body.insert("database".into(), db.into());
    body.insert("migrations".into(), migrations.into());
    body.extend(reported);
    if database == DatabaseReadiness::Ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// Each service's handlers of its operational routes.
pub struct OperationalRoutes {
    pub readyz: Route,
    pub metrics: Route,
    pub openapi_json: Route,
    pub docs: Route,
}

/// Mounts `/readyz` (open to all, as `/healthz`), then `/metrics`, `/openapi.json` and
/// `/docs` each as `guarded` wraps it (the service's access rule), and the docs page's assets.
pub fn configure_operations<Guarded>(
    cfg: &mut web::ServiceConfig,
    routes: OperationalRoutes,
    guarded: impl Fn(Resource) -> Guarded,
) where
    Guarded: HttpServiceFactory + 'static,
{
    cfg.service(web::resource("/readyz").route(routes.readyz))
        .service(guarded(web::resource("/metrics").route(routes.metrics)))
        .service(guarded(web::resource("/openapi.json").route(routes.openapi_json)))
        .service(guarded(web::resource("/docs").route(routes.docs)))
        .configure(crate::api_docs::configure_assets);
}
