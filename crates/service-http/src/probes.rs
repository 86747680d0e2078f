//! The probes both services answer: `/healthz` (the process is up; no I/O) and the body of
//! `/readyz` from what the readiness check of the service's own database found.

use actix_web::HttpResponse;
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
