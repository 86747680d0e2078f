//! `/task-types`: every type this engine accepts, with its kind and the settings that apply
//! to tasks that do not choose their own (URLs shown, secrets and values from the environment not).

use actix_web::{web, HttpResponse};
use dtp_contract::TaskTypeList;

use super::AppState;

#[utoipa::path(
    get, path = "/task-types", tag = "tasks",
    responses((status = 200, description = "Every registered task type, by name", body = TaskTypeList))
)]
/// `GET /task-types`.
pub async fn list_task_types(state: web::Data<AppState>) -> HttpResponse {
    let types = state.registry.types().map(|t| t.info()).collect();
    HttpResponse::Ok().json(TaskTypeList { types })
}
