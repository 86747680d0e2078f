//! Who may call which route. `identify` runs for every request: it reads the bearer token
//! and leaves its `Caller` in the request. Each route group then requires its access
//! (`require_tasks`, `require_leases`, `require_operations`): 401 `UNAUTHORIZED` without a
//! valid token, 403 `FORBIDDEN` with one that lacks the access, 429 `RATE_LIMITED` over the
//! token's quota. `/healthz` and `/readyz` require nothing.

use std::future::{ready, Ready};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderValue, AUTHORIZATION, WWW_AUTHENTICATE};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use service_http::body_budget;
use service_http::http_errors::json_error;
use service_http::rate_limit::RateLimiter;

use crate::domain::access::{Access, Caller};
use crate::service_tokens::ServiceTokens;

/// How callers are known.
pub enum Authentication {
    /// `DTP_AUTH=disabled`: every request is `Caller::anyone()`.
    Disabled,
    /// The tokens of `DTP_API_TOKENS_FILE`.
    Tokens(ServiceTokens),
}

/// The bearer token of a request, if it sent one.
pub fn bearer(request: &HttpRequest) -> Option<&str> {
    let value = request.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Every request: who is calling, if anyone the engine knows.
pub async fn identify(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let caller = match request
        .app_data::<web::Data<Authentication>>()
        .map(|a| a.get_ref())
    {
        Some(Authentication::Disabled) => Some(Caller::anyone()),
        Some(Authentication::Tokens(tokens)) => bearer(request.request()).and_then(|t| tokens.caller(t)),
        None => None,
    };
    if let Some(caller) = caller {
        request.extensions_mut().insert(caller);
    }
    next.call(request).await
}

async fn require<B: MessageBody>(
    access: Access,
    request: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    let allowed = request.extensions().get::<Caller>().map(|c| c.may(access));
    match allowed {
        Some(true) => {
            let charged = match (
                request.app_data::<web::Data<RateLimiter>>(),
                request.extensions().get::<Caller>(),
            ) {
                (Some(limiter), Some(caller)) => limiter.charge(&caller.name, 1),
                _ => Ok(()),
            };
            match charged {
                Ok(()) => {
                    let _share = body_budget::admit(&request).await;
                    Ok(next.call(request).await?.map_into_left_body())
                }
                Err(limited) => Ok(request.into_response(limited.response()).map_into_right_body()),
            }
        }
        Some(false) => {
            let refused = json_error(
                StatusCode::FORBIDDEN,
                "FORBIDDEN",
                "this token's role does not give access to this route",
            );
            Ok(request.into_response(refused).map_into_right_body())
        }
        None => {
            let mut refused = json_error(
                StatusCode::UNAUTHORIZED,
                "UNAUTHORIZED",
                "a valid service token is required: Authorization: Bearer <token>",
            );
            refused
                .headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            Ok(request.into_response(refused).map_into_right_body())
        }
    }
}

/// `/tasks`, `/task-types`: submitters and admins.
pub async fn require_tasks<B: MessageBody>(
    request: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    require(Access::Tasks, request, next).await
}

/// `/leases`: workers and admins.
pub async fn require_leases<B: MessageBody>(
    request: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    require(Access::Leases, request, next).await
}

/// `/metrics`, `/openapi.json`, `/docs`: admins.
pub async fn require_operations<B: MessageBody>(
    request: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    require(Access::Operations, request, next).await
}

/// The caller of a route that requires access (set by `identify`, checked by `require_*`).
impl FromRequest for Caller {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        ready(
            request
                .extensions()
                .get::<Caller>()
                .cloned()
                .ok_or_else(|| actix_web::error::ErrorUnauthorized("no caller")),
        )
    }
}
