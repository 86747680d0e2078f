//! Who may call which route. `identify` runs for every request: it reads the bearer token
//! and leaves its `Caller` in the request. Each route group then requires its access
//! (`require_tasks`, `require_leases`, `require_operations`): 401 `UNAUTHORIZED` without a
//! valid token, 403 `FORBIDDEN` with one that lacks the access, 429 `RATE_LIMITED` over the
//! token's quota. `/healthz` and `/readyz` require nothing.

use std::future::Ready;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use service_http::access::{self as access_gate, bearer, Standing};

use crate::domain::access::{Access, Caller};
use crate::service_tokens::ServiceTokens;

/// How callers are known.
pub enum Authentication {
    /// `DTP_AUTH=disabled`: every request is `Caller::anyone()`.
    Disabled,
    /// The tokens of `DTP_API_TOKENS_FILE`.
    Tokens(ServiceTokens),
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
    let standing = match request.extensions().get::<Caller>() {
        Some(caller) if caller.may(access) => Standing::Allowed {
            quota_key: caller.name.clone(),
        },
        Some(_) => Standing::Forbidden("this token's role does not give access to this route".into()),
        None => Standing::Unidentified("a valid service token is required: Authorization: Bearer <token>"),
    };
    access_gate::admit(standing, request, next).await
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
        access_gate::identified(request)
    }
}
