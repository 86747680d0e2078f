//! Who may call which route. `identify` runs for every request: it reads the bearer key and
//! leaves its `Principal` (a tenant and scopes) in the request. Each route then requires a
//! scope (`require_read`, `require_write`, `require_admin`): 401 `UNAUTHORIZED` (with
//! `WWW-Authenticate: Bearer`) without a live key, 403 `FORBIDDEN` with one that lacks it,
//! 429 `RATE_LIMITED` over the key's quota. The dashboard's pages (`/ui`) also take the key
//! its sign-in left in a cookie, and send a browser without one to the sign-in page.

use std::future::Ready;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use service_http::access::{self as access_gate, bearer, Standing};

use crate::api_keys::ApiKeys;
use crate::domain::api_key::{Principal, Scope};

/// How callers are known.
pub enum Authentication {
    /// `TASKPILOT_AUTH=disabled`: every request is `Principal::anyone()`.
    Disabled,
    Keys(ApiKeys),
}

/// Every request: who is calling, if their key is live.
pub async fn identify(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let principal = match request
        .app_data::<web::Data<Authentication>>()
        .map(|a| a.get_ref())
    {
        Some(Authentication::Disabled) => Some(Principal::anyone()),
        Some(Authentication::Keys(keys)) => {
            presented_key(request.request()).and_then(|key| keys.authenticate(&key))
        }
        None => None,
    };
    if let Some(principal) = principal {
        request.extensions_mut().insert(principal);
    }
    next.call(request).await
}

/// Where the dashboard lives; only its requests may present their key in a cookie.
pub const DASHBOARD_PATH: &str = "/ui";

/// The cookie the dashboard's sign-in sets: the key itself, `HttpOnly`, `SameSite=Strict`,
/// sent only to `/ui`.
pub const SESSION_COOKIE: &str = "taskpilot_key";

/// The key a request presents: its bearer token, or, on the dashboard's paths, its cookie.
fn presented_key(request: &HttpRequest) -> Option<String> {
    if let Some(key) = bearer(request) {
        return Some(key.to_owned());
    }
    let path = request.path();
    let on_dashboard = path == DASHBOARD_PATH || path.starts_with("/ui/");
    on_dashboard
        .then(|| request.cookie(SESSION_COOKIE))
        .flatten()
        .map(|cookie| cookie.value().to_owned())
}

async fn require<B: MessageBody>(
    scope: Scope,
    request: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    let standing = match request.extensions().get::<Principal>() {
        Some(principal) if principal.may(scope) => Standing::Allowed {
            quota_key: principal.key_id.clone().unwrap_or_default(),
        },
        Some(_) => Standing::Forbidden(format!("this key lacks the {} scope", scope.as_str())),
        None => Standing::Unidentified("a live API key is required: Authorization: Bearer tp_..."),
    };
    access_gate::admit(standing, request, next).await
}

/// The GET routes of `/api/tasks`.
pub async fn require_read<B: MessageBody>(
    request: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    require(Scope::TasksRead, request, next).await
}

/// Create, bind, cancel.
pub async fn require_write<B: MessageBody>(
    request: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    require(Scope::TasksWrite, request, next).await
}

/// Keys, and the operational routes unless `TASKPILOT_PUBLIC_OPS=true`.
pub async fn require_admin<B: MessageBody>(
    request: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    require(Scope::Admin, request, next).await
}

/// The dashboard's pages: a browser without a live key is sent to sign in (a page load by a
/// redirect, a partial update by htmx's `HX-Redirect`). With one, reads need `tasks:read` and
/// writes `tasks:write`; a refusal is an HTML fragment for the page to show.
pub async fn require_dashboard_session<B: MessageBody>(
    request: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    let refuse = |request: ServiceRequest, status: StatusCode, message: &str| {
        let page = actix_web::HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .body(format!("<div class=\"alert\" role=\"alert\">{message}</div>"));
        Ok(request.into_response(page).map_into_right_body())
    };
    let reads = matches!(
        *request.method(),
        actix_web::http::Method::GET | actix_web::http::Method::HEAD
    );
    let scope = if reads {
        Scope::TasksRead
    } else {
        Scope::TasksWrite
    };
    let allowed = request.extensions().get::<Principal>().map(|p| p.may(scope));
    match allowed {
        // A write carries htmx's header, which a page on another site cannot add to a form
        // post (besides the cookie, which `SameSite=Strict` keeps from such a post).
        Some(true) if !reads && !request.headers().contains_key("hx-request") => refuse(
            request,
            StatusCode::FORBIDDEN,
            "Changes are made from the dashboard's own pages.",
        ),
        Some(true) => require(scope, request, next).await,
        Some(false) => refuse(
            request,
            StatusCode::FORBIDDEN,
            "<strong>FORBIDDEN</strong> this key lacks the tasks:write scope",
        ),
        None if request.headers().contains_key("hx-request") => {
            let mut response = refuse(
                request,
                StatusCode::UNAUTHORIZED,
                "Your session ended: sign in again.",
            )?;
            response.headers_mut().insert(
                HeaderName::from_static("hx-redirect"),
                HeaderValue::from_static(SIGN_IN_PATH),
            );
            Ok(response)
        }
        None => {
            let to_sign_in = actix_web::HttpResponse::SeeOther()
                .insert_header((actix_web::http::header::LOCATION, SIGN_IN_PATH))
                .finish();
            Ok(request.into_response(to_sign_in).map_into_right_body())
        }
    }
}

/// Where the dashboard signs a browser in.
const SIGN_IN_PATH: &str = "/ui/login";

/// The principal of a route that requires a scope (set by `identify`, checked by `require_*`).
impl FromRequest for Principal {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        access_gate::identified(request)
    }
}
