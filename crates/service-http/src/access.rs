//! The gate in front of a route that needs a caller. Each service decides who is calling and
//! whether they may (its tokens, its keys, its scopes); the gate then charges the caller's
//! quota and admits the body under the body budget, or answers the refusal: 401 with
//! `WWW-Authenticate: Bearer`, 403, or 429.

use std::future::{ready, Ready};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderValue, AUTHORIZATION, WWW_AUTHENTICATE};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, HttpRequest};

use crate::body_budget;
use crate::http_errors::json_error;
use crate::rate_limit::RateLimiter;

/// The bearer token of a request, if it sent one.
pub fn bearer(request: &HttpRequest) -> Option<&str> {
    let value = request.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// What the service found of a request's caller, for this route.
pub enum Standing {
    /// May call; the request is charged to the quota named `quota_key`.
    Allowed { quota_key: String },
    /// Known, but not allowed here: 403 `FORBIDDEN` with this message.
    Forbidden(String),
    /// Not known: 401 `UNAUTHORIZED` with this message.
    Unidentified(&'static str),
}

/// Passes the request on as `standing` allows, or answers the refusal.
pub async fn admit<B: MessageBody>(
    standing: Standing,
    request: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    match standing {
        Standing::Allowed { quota_key } => {
            let charged = match request.app_data::<web::Data<RateLimiter>>() {
                Some(limiter) => limiter.charge(&quota_key, 1),
                None => Ok(()),
            };
            match charged {
                Ok(()) => {
                    let _share = body_budget::admit(&request).await;
                    Ok(next.call(request).await?.map_into_left_body())
                }
                Err(limited) => Ok(request.into_response(limited.response()).map_into_right_body()),
            }
        }
        Standing::Forbidden(message) => {
            let refused = json_error(StatusCode::FORBIDDEN, "FORBIDDEN", message);
            Ok(request.into_response(refused).map_into_right_body())
        }
        Standing::Unidentified(message) => {
            let mut refused = json_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", message);
            refused
                .headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            Ok(request.into_response(refused).map_into_right_body())
        }
    }
}

/// The caller the service's identifying middleware left in the request, for an extractor;
/// a route reached without one was mounted without its gate, a bug answered 401.
pub fn identified<T: Clone + 'static>(request: &HttpRequest) -> Ready<Result<T, actix_web::Error>> {
    ready(
        request
            .extensions()
            .get::<T>()
            .cloned()
            .ok_or_else(|| actix_web::error::ErrorUnauthorized("no caller")),
    )
}
