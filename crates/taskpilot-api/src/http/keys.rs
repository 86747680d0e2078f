//! `/api/admin/keys`: an admin key manages the keys of its own tenant: creates them (the
//! key's text is answered once), lists them (without secrets) and revokes them.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use dtp_contract::ErrorBody;
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::AppState;
use crate::api_keys::{KeyError, KeyRequest};
use crate::domain::api_key::{parse_scopes, Principal};
use crate::store::api_keys::ApiKeyRow;

/// `POST /api/admin/keys` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"name": "reporting", "scopes": ["tasks:read"], "expiresInDays": 90}))]
pub struct CreateKeyRequest {
    /// What the key is for, up to 100 characters.
    #[serde(default)]
    #[schema(max_length = 100)]
    name: String,
    /// `tasks:read`, `tasks:write`, `admin` (implies the others).
    #[schema(min_items = 1, max_items = 3)]
    scopes: Vec<String>,
    /// Days until the key stops working, 1 to 3650; never when absent.
    #[serde(default, deserialize_with = "dtp_contract::integral::option_i32")]
    #[schema(minimum = 1, maximum = 3650)]
    expires_in_days: Option<i32>,
}

/// A key as listed: never its secret.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyView {
    id: String,
    tenant: String,
    name: String,
    scopes: Vec<String>,
    #[serde(with = "dtp_contract::millis")]
    created_at: DateTime<Utc>,
    #[serde(with = "dtp_contract::millis::option")]
    last_used_at: Option<DateTime<Utc>>,
    #[serde(with = "dtp_contract::millis::option")]
    expires_at: Option<DateTime<Utc>>,
    #[serde(with = "dtp_contract::millis::option")]
    revoked_at: Option<DateTime<Utc>>,
}

impl From<ApiKeyRow> for KeyView {
    fn from(row: ApiKeyRow) -> Self {
        Self {
            id: row.id,
            tenant: row.tenant,
            name: row.name,
            scopes: row.scopes,
            created_at: row.created_at,
            last_used_at: row.last_used_at,
            expires_at: row.expires_at,
            revoked_at: row.revoked_at,
        }
    }
}

/// A key just made, with its text: shown this once.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedKeyView {
    /// `Authorization: Bearer <key>`; not stored, not shown again.
    key: String,
    #[serde(flatten)]
    view: KeyView,
}

#[utoipa::path(
    post, path = "/api/admin/keys", tag = "keys",
    request_body = CreateKeyRequest,
    responses(
        (status = 201, description = "The key, its text shown this once", body = CreatedKeyView),
        (status = 400, description = "Malformed JSON or an unknown field", body = ErrorBody),
        (status = 401, description = "No live API key (UNAUTHORIZED)", body = ErrorBody),
        (status = 403, description = "The key lacks the admin scope (FORBIDDEN)", body = ErrorBody),
        (status = 422, description = "An unknown scope, a name too long, expiresInDays out of range", body = ErrorBody),
        (status = 503, description = "TaskPilot's database unavailable", body = ErrorBody),
    )
)]
/// `POST /api/admin/keys`: a key of the caller's tenant.
pub async fn create_key(
    state: web::Data<AppState>,
    principal: Principal,
    body: web::Json<CreateKeyRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let names: Vec<&str> = body.scopes.iter().map(String::as_str).collect();
    let scopes = parse_scopes(&names).map_err(ApiError::InvalidKey)?;
    let expires_in_days = match body.expires_in_days {
        Some(days) => Some(u32::try_from(days).map_err(|_| {
            ApiError::InvalidKey(format!("expiresInDays must be between 1 and 3650, got {days}"))
        })?),
        None => None,
    };
    let created = state
        .keys
        .create(KeyRequest {
            tenant: principal.tenant,
            scopes,
            name: body.name,
            expires_in_days,
        })
        .await
        .map_err(|e| match e {
            KeyError::Invalid(message) => ApiError::InvalidKey(message),
            KeyError::Store(e) => ApiError::from(e),
        })?;
    Ok(HttpResponse::Created().json(CreatedKeyView {
        key: created.text,
        view: created.row.into(),
    }))
}

#[utoipa::path(
    get, path = "/api/admin/keys", tag = "keys",
    responses(
        (status = 200, description = "The tenant's keys, oldest first, without secrets", body = Vec<KeyView>),
        (status = 401, description = "No live API key (UNAUTHORIZED)", body = ErrorBody),
        (status = 403, description = "The key lacks the admin scope (FORBIDDEN)", body = ErrorBody),
        (status = 503, description = "TaskPilot's database unavailable", body = ErrorBody),
    )
)]
/// `GET /api/admin/keys`.
pub async fn list_keys(state: web::Data<AppState>, principal: Principal) -> Result<HttpResponse, ApiError> {
    let rows = state.keys.list(Some(&principal.tenant)).await?;
    Ok(HttpResponse::Ok().json(rows.into_iter().map(KeyView::from).collect::<Vec<_>>()))
}

#[utoipa::path(
    delete, path = "/api/admin/keys/{id}", tag = "keys",
    params(("id" = String, Path, description = "The key's id (the part after tp_)")),
    responses(
        (status = 204, description = "The key is revoked (also when it already was)"),
        (status = 401, description = "No live API key (UNAUTHORIZED)", body = ErrorBody),
        (status = 403, description = "The key lacks the admin scope (FORBIDDEN)", body = ErrorBody),
        (status = 404, description = "No such key in this tenant (KEY_NOT_FOUND)", body = ErrorBody),
        (status = 503, description = "TaskPilot's database unavailable", body = ErrorBody),
    )
)]
/// `DELETE /api/admin/keys/{id}`: revokes a key of the caller's tenant, on every process at once.
pub async fn revoke_key(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let shown: String = id.chars().take(100).collect();
    match state.keys.revoke(&id, Some(&principal.tenant)).await? {
        Some(_) => Ok(HttpResponse::NoContent().finish()),
        None => Err(ApiError::KeyNotFound(shown)),
    }
}
