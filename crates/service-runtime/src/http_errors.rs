//! JSON error bodies (`{code, message}`) for everything actix answers on its own:
//! malformed or oversized bodies, unparsable paths and queries, unknown routes and methods.

use actix_web::dev::ServiceResponse;
use actix_web::error::{InternalError, JsonPayloadError, PathError, QueryPayloadError};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::middleware::{ErrorHandlerResponse, ErrorHandlers};
use actix_web::{web, HttpRequest, HttpResponse};
use dtp_contract::ErrorBody;

/// Default limit for request bodies: 1 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

/// A JSON error answer.
pub fn json_error(status: StatusCode, code: &str, message: impl Into<String>) -> HttpResponse {
    HttpResponse::build(status).json(ErrorBody {
        code: code.to_owned(),
        message: message.into(),
    })
}

/// A resource id from a path segment: a positive integer, or `None`.
pub fn parse_positive_id(raw: &str) -> Option<i64> {
    raw.parse::<i64>().ok().filter(|id| *id > 0)
}

/// Status, code and message for a request body that could not be read as JSON.
pub fn describe_json_error(err: &JsonPayloadError, limit: usize) -> (StatusCode, &'static str, String) {
    match err {
        JsonPayloadError::Overflow { .. } | JsonPayloadError::OverflowKnownLength { .. } => (
            StatusCode::PAYLOAD_TOO_LARGE,
            "PAYLOAD_TOO_LARGE",
            format!("request body exceeds the limit of {limit} bytes"),
        ),
        JsonPayloadError::ContentType => (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            "request body must be JSON (Content-Type: application/json)".into(),
        ),
        JsonPayloadError::Deserialize(e) if e.is_data() => (
            StatusCode::BAD_REQUEST,
            "INVALID_BODY",
            format!("invalid request body: {e}"),
        ),
        JsonPayloadError::Deserialize(e) => (
            StatusCode::BAD_REQUEST,
            "MALFORMED_JSON",
            format!("malformed JSON: {e}"),
        ),
        other => (
            StatusCode::BAD_REQUEST,
            "MALFORMED_JSON",
            format!("unreadable request body: {other}"),
        ),
    }
}

/// Body extractor settings: size limit and JSON errors.
pub fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .content_type_required(false)
        .error_handler(move |err, _req: &HttpRequest| {
            let (status, code, message) = describe_json_error(&err, limit);
            InternalError::from_response(err, json_error(status, code, message)).into()
        })
}

/// Path extractor settings: a path segment of the wrong type is a 400.
pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|err: PathError, _req| {
        let message = format!("invalid path parameter: {err}");
        InternalError::from_response(err, json_error(StatusCode::BAD_REQUEST, "INVALID_PATH", message)).into()
    })
}

/// Query extractor settings: an unparsable query string is a 400.
pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err: QueryPayloadError, _req| {
        let message = format!("invalid query string: {err}");
        InternalError::from_response(err, json_error(StatusCode::BAD_REQUEST, "INVALID_QUERY", message))
            .into()
    })
}

/// Answers unknown routes with a JSON 404.
pub async fn route_not_found(req: HttpRequest) -> HttpResponse {
    json_error(
        StatusCode::NOT_FOUND,
        "ROUTE_NOT_FOUND",
        format!("no route for {} {}", req.method(), req.path()),
    )
}

/// Middleware that replaces any non-JSON error body (e.g. actix's 405) with a JSON one.
pub fn json_error_bodies<B: 'static>() -> ErrorHandlers<B> {
    ErrorHandlers::new().default_handler(rewrite_to_json)
}

fn rewrite_to_json<B>(res: ServiceResponse<B>) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let is_json = res
        .response()
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status();
    let allow: Option<HeaderValue> = res.response().headers().get(header::ALLOW).cloned();
    let (req, _) = res.into_parts();
    let code = match status {
        StatusCode::METHOD_NOT_ALLOWED => "METHOD_NOT_ALLOWED",
        StatusCode::NOT_FOUND => "ROUTE_NOT_FOUND",
        StatusCode::PAYLOAD_TOO_LARGE => "PAYLOAD_TOO_LARGE",
        s if s.is_server_error() => "INTERNAL",
        _ => "BAD_REQUEST",
    };
    let message = status.canonical_reason().unwrap_or("error").to_owned();
    let mut response = json_error(status, code, message);
    if let Some(allow) = allow {
        response.headers_mut().insert(header::ALLOW, allow);
    }
    Ok(ErrorHandlerResponse::Response(
        ServiceResponse::new(req, response).map_into_right_body(),
    ))
}

/// A browsable API page (Swagger UI, loaded by the browser) over the service's `/openapi.json`.
pub fn api_docs_page(title: &str) -> HttpResponse {
    const SWAGGER_UI: &str = "https://unpkg.com/swagger-ui-dist@5";
    let page = format!(
        r##"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} API</title>
<link rel="stylesheet" href="{SWAGGER_UI}/swagger-ui.css"></head>
<body><div id="ui"></div>
<script src="{SWAGGER_UI}/swagger-ui-bundle.js"></script>
<script>window.ui = SwaggerUIBundle({{ url: "/openapi.json", dom_id: "#ui" }});</script>
</body></html>"##
    );
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(page)
}
