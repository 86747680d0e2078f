//! Cross-origin access for browser clients. None by default: a page on another site cannot
//! read an answer or send an authorized request. `*_CORS_ORIGINS` lists the origins that may,
//! each exactly as a browser sends it (`https://app.example.com`, `http://localhost:5173`).

use std::sync::Arc;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::HttpResponse;

use crate::http_errors::json_error;
use service_process::env_config::{ConfigError, SettingSource};

/// How long a browser may keep a preflight's answer, in seconds.
const PREFLIGHT_MAX_AGE_SECS: u32 = 600;
const ALLOWED_METHODS: &str = "GET, HEAD, POST, PUT, DELETE";
const ALLOWED_HEADERS: &str = "authorization, content-type, traceparent";
const EXPOSED_HEADERS: &str = "retry-after, www-authenticate";

/// The origins named by the setting `name` (comma-separated), each checked to be a bare
/// `http(s)://host[:port]` origin; none when unset.
pub fn origins(source: &dyn SettingSource, name: &str) -> Result<Vec<String>, ConfigError> {
    let Some(raw) = source.get(name) else {
        return Ok(Vec::new());
    };
    raw.split(',')
        .map(str::trim)
        .filter(|origin| !origin.is_empty())
        .map(|origin| {
            check_origin(origin).map_err(|reason| ConfigError {
                name: name.to_owned(),
                value: raw.clone(),
                reason: format!("{origin:?} {reason}"),
            })?;
            Ok(origin.to_owned())
        })
        .collect()
}

fn check_origin(origin: &str) -> Result<(), &'static str> {
    if origin == "*" {
        return Err("is not allowed: list each origin (a wildcard would let any site use a key it holds)");
    }
    let url = url::Url::parse(origin).map_err(|_| "is not an origin (scheme://host[:port])")?;
    let bare = matches!(url.scheme(), "http" | "https")
        && url.host_str().is_some()
        && url.username().is_empty()
        && url.password().is_none()
        && url.query().is_none()
        && url.fragment().is_none()
        && url.path() == "/"
        && !origin.ends_with('/');
    if bare && url.origin().ascii_serialization() == origin {
        Ok(())
    } else {
        Err("is not an origin: scheme://host[:port], lower case, no path, no trailing slash")
    }
}

/// The origins allowed to call across sites, shared by every HTTP worker.
#[derive(Debug, Clone, Default)]
pub struct AllowedOrigins(Arc<Vec<HeaderValue>>);

impl AllowedOrigins {
    pub fn new(origins: &[String]) -> Self {
        Self(Arc::new(
            origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o).ok())
                .collect(),
        ))
    }

    fn allows(&self, origin: &HeaderValue) -> bool {
        self.0.iter().any(|allowed| allowed == origin)
    }
}

/// Middleware answering preflights and marking answers readable for the listed origins
/// (`AllowedOrigins` in app data). A request from any other origin is served as if it came
/// from no page at all: without the headers, a browser keeps the answer from the page. A
/// preflight from another origin is `403 ORIGIN_NOT_ALLOWED`; with no origins listed, no
/// preflight is answered (`405`) and nothing is added to any answer.
pub async fn cross_origin(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let listed = req
        .app_data::<actix_web::web::Data<AllowedOrigins>>()
        .map(|origins| origins.get_ref().clone())
        .unwrap_or_default();
    if listed.0.is_empty() {
        // Nothing is granted and no answer varies by origin.
        return Ok(next.call(req).await?.map_into_boxed_body());
    }
    let origin = req.headers().get(header::ORIGIN).cloned();
    let allowed = origin.as_ref().is_some_and(|o| listed.allows(o));
    let preflight = req.method() == Method::OPTIONS
        && req.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
        && origin.is_some();
    if preflight {
        let response = if allowed {
            let mut response = HttpResponse::NoContent();
            response
                .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, ALLOWED_METHODS))
                .insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, ALLOWED_HEADERS))
                .insert_header((header::ACCESS_CONTROL_MAX_AGE, PREFLIGHT_MAX_AGE_SECS.to_string()));
            response.finish()
        } else {
            json_error(
                StatusCode::FORBIDDEN,
                "ORIGIN_NOT_ALLOWED",
                "this origin may not call the API from a browser",
            )
        };
        let mut response = req.into_response(response);
        mark(response.headers_mut(), origin.filter(|_| allowed));
        return Ok(response);
    }
    let mut response = next.call(req).await?.map_into_boxed_body();
    mark(response.headers_mut(), origin.filter(|_| allowed));
    if allowed {
        response.headers_mut().insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(EXPOSED_HEADERS),
        );
    }
    Ok(response)
}

/// Grants `origin` (when allowed) and says that the answer depends on the `Origin` header,
/// so a cache does not serve one origin's answer to another.
fn mark(headers: &mut actix_web::http::header::HeaderMap, origin: Option<HeaderValue>) {
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
    if let Some(origin) = origin {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use service_process::env_config::FixedSettings;

    #[test]
    fn origins_are_listed_exactly() {
        let read = |value: &str| origins(&FixedSettings(&[("X_CORS_ORIGINS", value)]), "X_CORS_ORIGINS");
        assert_eq!(
            read("https://app.example.com, http://localhost:5173").unwrap(),
            ["https://app.example.com", "http://localhost:5173"]
        );
        assert_eq!(
            origins(&FixedSettings(&[]), "X_CORS_ORIGINS").unwrap(),
            Vec::<String>::new()
        );
        for bad in [
            "*",
            "app.example.com",
            "https://app.example.com/",
            "https://app.example.com/path",
            "https://App.example.com",
            "ftp://files.example.com",
            "https://user@app.example.com",
            "https://app.example.com:443",
        ] {
            let err = read(bad).unwrap_err();
            assert_eq!(err.name, "X_CORS_ORIGINS", "{bad}");
            assert!(err.reason.contains(bad), "{err}");
        }
    }
}
