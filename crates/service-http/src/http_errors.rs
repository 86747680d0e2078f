//! JSON error bodies (`{code, message}`) for everything actix answers on its own:
//! malformed or oversized bodies, unparsable paths and queries, unknown routes and methods.

use actix_web::dev::ServiceResponse;
use actix_web::error::{InternalError, JsonPayloadError, PathError, QueryPayloadError};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::middleware::{ErrorHandlerResponse, ErrorHandlers};
use actix_web::{web, HttpRequest, HttpResponse};
use dtp_contract::ErrorBody;
use service_postgres::StoreError;

/// Default limit for request bodies: 1 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

/// A JSON error answer.
pub fn json_error(status: StatusCode, code: &str, message: impl Into<String>) -> HttpResponse {
    HttpResponse::build(status).json(ErrorBody {
        code: code.to_owned(),
        message: message.into(),
    })
}

/// A service's error answer: `json_error`, and for a 503 `Retry-After: 1`, since what is
/// unavailable (a database, the scheduler) usually is again within a second.
pub fn error_answer(status: StatusCode, code: &str, message: impl Into<String>) -> HttpResponse {
    let mut response = json_error(status, code, message);
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

/// A resource id from a path segment: a positive integer in canonical decimal (no sign, no
/// leading zero), or `None`.
pub fn parse_positive_id(raw: &str) -> Option<i64> {
    let canonical = raw.bytes().all(|b| b.is_ascii_digit()) && !raw.starts_with('0');
    raw.parse::<i64>().ok().filter(|id| canonical && *id > 0)
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
            format!("invalid request body: {}", shown(&e.to_string())),
        ),
        JsonPayloadError::Deserialize(e) => (
            StatusCode::BAD_REQUEST,
            "MALFORMED_JSON",
            format!("malformed JSON: {}", shown(&e.to_string())),
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
    // A JSON error is already what clients expect; an HTML one is a page of TaskPilot's
    // dashboard, written for the browser that asked.
    let keeps_body = res
        .response()
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| {
            v.as_bytes().starts_with(b"application/json") || v.as_bytes().starts_with(b"text/html")
        });
    if keeps_body {
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

pub use dtp_contract::{shown, ECHO_CHARS};

/// Refuses, before any route runs, what no route of the services takes: a body that is not
/// `application/json` (a page on another site can post `text/plain` cross-site without a
/// preflight) or is encoded other than identity or gzip (415 `UNSUPPORTED_MEDIA_TYPE`), and a
/// path with a percent-encoded letter, digit or `-._~` (400 `INVALID_PATH`: `/tasks/%31` is not a
/// canonical way to name task 1). A `HEAD` is answered as the `GET` would be, without the body.
pub async fn guard_requests(
    mut req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody + 'static>,
) -> Result<ServiceResponse<actix_web::body::BoxBody>, actix_web::Error> {
    use actix_web::body::BoxBody;
    use actix_web::http::Method;

    let refuse = |req: actix_web::dev::ServiceRequest, status, code: &str, message: &str| {
        Ok(req
            .into_response(json_error(status, code, message))
            .map_into_boxed_body())
    };
    let encoding = req
        .headers()
        .get(header::CONTENT_ENCODING)
        .map(|v| v.as_bytes().to_ascii_lowercase());
    if encoding
        .as_deref()
        .is_some_and(|e| e != b"identity" && e != b"gzip")
    {
        return refuse(
            req,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            "request bodies may be sent as they are or gzip-encoded, nothing else",
        );
    }
    if has_body(&req) && !is_json(&req) {
        return refuse(
            req,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            "request body must be JSON (Content-Type: application/json)",
        );
    }
    if encodes_unreserved(req.uri().path()) {
        return refuse(
            req,
            StatusCode::BAD_REQUEST,
            "INVALID_PATH",
            "the path percent-encodes a character that needs no encoding",
        );
    }
    let head = req.method() == Method::HEAD;
    if head {
        req.head_mut().method = Method::GET;
    }
    let response = next.call(req).await?;
    Ok(if head {
        response.map_body(|_, _| BoxBody::new(()))
    } else {
        response.map_into_boxed_body()
    })
}

fn has_body(req: &actix_web::dev::ServiceRequest) -> bool {
    let headers = req.headers();
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    length.is_some_and(|n| n > 0) || headers.contains_key(header::TRANSFER_ENCODING)
}

fn is_json(req: &actix_web::dev::ServiceRequest) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
}

/// Whether `path` holds `%XX` for an unreserved character (RFC 3986: letters, digits, `-._~`).
fn encodes_unreserved(path: &str) -> bool {
    let bytes = path.as_bytes();
    bytes.windows(3).any(|w| {
        w[0] == b'%'
            && std::str::from_utf8(&w[1..])
                .ok()
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                .is_some_and(|c| c.is_ascii_alphanumeric() || b"-._~".contains(&c))
    })
}

/// How a store failure is answered: 503 when the database is unavailable (a warning in the
/// log), 500 for anything else (an error in the log with its cause; the caller sees none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreFailure {
    Unavailable,
    Internal,
}

impl From<StoreError> for StoreFailure {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable(reason) => {
                tracing::warn!(error = %reason, "database unavailable");
                StoreFailure::Unavailable
            }
            other => {
                tracing::error!(error = %other, "store error");
                StoreFailure::Internal
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_input_is_cut_in_messages() {
        assert_eq!(shown("short"), "short");
        let long = "x".repeat(1_000_000);
        let cut = shown(&long);
        assert_eq!(cut.chars().count(), ECHO_CHARS + 1);
        assert!(cut.ends_with('…'));
        assert_eq!(shown(&"é".repeat(ECHO_CHARS)), "é".repeat(ECHO_CHARS));
    }

    #[test]
    fn ids_are_canonical_decimals() {
        assert_eq!(parse_positive_id("42"), Some(42));
        for bad in [
            "+1",
            "01",
            "0",
            "-1",
            " 1",
            "1 ",
            "1e3",
            "",
            "9223372036854775808",
            "１",
        ] {
            assert_eq!(parse_positive_id(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn finds_needlessly_encoded_characters() {
        assert!(encodes_unreserved("/tasks/%31"));
        assert!(encodes_unreserved("/tasks/%7e"));
        assert!(!encodes_unreserved("/tasks/1"));
        assert!(!encodes_unreserved("/leases/a%2Fb"));
        assert!(!encodes_unreserved("/x%2"));
    }
}
