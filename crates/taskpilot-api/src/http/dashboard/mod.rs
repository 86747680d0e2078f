//! The dashboard at `/ui`: server-rendered pages over the same flows as the JSON API, with
//! htmx for partial updates and the event streams for live rows. Every write is a JSON POST
//! (htmx's `json-enc`), which a page on another site cannot send without a CORS preflight.

mod assets;
mod bulk_cancel;
mod layout;
mod overview;
mod session;
mod task_list;
mod task_page;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::middleware::{from_fn, DefaultHeaders};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use maud::html;

use super::auth;
use super::error::ApiError;
use super::events;

/// Scripts, styles and connections only from TaskPilot itself; no frames, no inline code.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Registers the dashboard's routes under `/ui`, and `/` sending the browser there.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let session = || from_fn(auth::require_dashboard_session);
    cfg.service(web::resource("/").route(web::get().to(to_dashboard)))
        .service(
            web::scope("/ui")
                .wrap(
                    DefaultHeaders::new()
                        .add((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
                        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
                        .add((header::REFERRER_POLICY, "same-origin")),
                )
                .service(web::resource("/assets/{name}").route(web::get().to(assets::asset)))
                .service(
                    web::resource("/login")
                        .route(web::get().to(session::sign_in_page))
                        .route(web::post().to(session::sign_in)),
                )
                .service(web::resource("/logout").route(web::post().to(session::sign_out)))
                .service(
                    web::resource("")
                        .wrap(session())
                        .route(web::get().to(task_list::tasks_page)),
                )
                .service(
                    web::resource("/search")
                        .wrap(session())
                        .route(web::get().to(task_list::search)),
                )
                .service(
                    web::resource("/overview")
                        .wrap(session())
                        .route(web::get().to(overview::overview_page)),
                )
                .service(
                    web::resource("/bulk-cancel")
                        .wrap(session())
                        .route(web::get().to(bulk_cancel::preview))
                        .route(web::post().to(bulk_cancel::cancel_matching)),
                )
                .service(
                    web::resource("/events")
                        .wrap(session())
                        .route(web::get().to(events::tenant_events)),
                )
                .service(
                    web::resource("/tasks")
                        .wrap(session())
                        .route(web::post().to(task_list::create)),
                )
                .service(
                    web::resource("/tasks/{id}")
                        .wrap(session())
                        .route(web::get().to(task_page::task_page)),
                )
                .service(
                    web::resource("/tasks/{id}/row")
                        .wrap(session())
                        .route(web::get().to(task_list::row)),
                )
                .service(
                    web::resource("/tasks/{id}/execution")
                        .wrap(session())
                        .route(web::get().to(task_page::execution_section)),
                )
                .service(
                    web::resource("/tasks/{id}/events")
                        .wrap(session())
                        .route(web::get().to(events::web_task_events)),
                )
                .service(
                    web::resource("/tasks/{id}/bind")
                        .wrap(session())
                        .route(web::post().to(task_page::bind)),
                )
                .service(
                    web::resource("/tasks/{id}/cancel")
                        .wrap(session())
                        .route(web::post().to(task_page::cancel)),
                ),
        );
}

async fn to_dashboard() -> HttpResponse {
    HttpResponse::Found()
        .insert_header((header::LOCATION, auth::DASHBOARD_PATH))
        .finish()
}

/// A failure shown in the page: the API's status, code and message, as an alert.
#[derive(Debug)]
pub(super) struct PageError(ApiError);

impl std::fmt::Display for PageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl<E: Into<ApiError>> From<E> for PageError {
    fn from(err: E) -> Self {
        PageError(err.into())
    }
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        self.0.status_code()
    }

    fn error_response(&self) -> HttpResponse {
        let alert = html! {
            div.alert role="alert" {
                strong { (self.0.code()) } " " (self.0.to_string())
            }
        };
        HttpResponse::build(self.status_code())
            .content_type("text/html; charset=utf-8")
            .body(alert.into_string())
    }
}

/// An answer to an htmx request that loads `location` as a new page.
fn load_page(location: &str) -> HttpResponse {
    let mut response = HttpResponse::Ok().finish();
    if let Ok(value) = HeaderValue::from_str(location) {
        response
            .headers_mut()
            .insert(header::HeaderName::from_static("hx-redirect"), value);
    }
    response
}

/// Whether htmx made the request (a partial update rather than a page load).
fn is_partial(request: &HttpRequest) -> bool {
    request.headers().contains_key("hx-request")
}

/// A rendered page (or part of one) as an answer.
fn html_page(markup: maud::Markup) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(markup.into_string())
}
