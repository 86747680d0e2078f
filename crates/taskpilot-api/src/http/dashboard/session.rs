//! Signing in to the dashboard with an API key, and out. The key is checked as the API
//! checks it, then kept in an `HttpOnly`, `SameSite=Strict` cookie sent only to `/ui`.

use actix_web::cookie::{time::Duration as CookieAge, Cookie, SameSite};
use actix_web::{web, HttpRequest, HttpResponse};
use maud::html;
use serde::Deserialize;

use super::layout::{page, Section};
use super::{html_page, load_page};
use crate::http::auth::{Authentication, DASHBOARD_PATH, SESSION_COOKIE};

/// How long a sign-in lasts in the browser.
const SESSION_HOURS: i64 = 8;

/// `GET /ui/login`.
pub(super) async fn sign_in_page() -> HttpResponse {
    let body = html! {
        section.sign-in aria-labelledby="sign-in-title" {
            h1 #sign-in-title { "Sign in" }
            p { "Use a TaskPilot API key (" code { "tp_…" } "). A key with only " code { "tasks:read" } " can look but not change anything." }
            form hx-post="/ui/login" hx-target="#sign-in-error" hx-swap="innerHTML" {
                label for="key" { "API key" }
                input #key name="key" type="password" autocomplete="current-password" required autofocus;
                button type="submit" { "Sign in" }
            }
            div #sign-in-error aria-live="assertive" {}
        }
    };
    html_page(page("Sign in", Section::SignIn, None, body))
}

#[derive(Deserialize)]
pub(super) struct SignIn {
    key: String,
}

/// `POST /ui/login`: a live key signs in; any other is refused, with nothing set.
pub(super) async fn sign_in(
    request: HttpRequest,
    authentication: web::Data<Authentication>,
    form: web::Json<SignIn>,
) -> HttpResponse {
    let key = form.into_inner().key.trim().to_owned();
    let live = match authentication.get_ref() {
        Authentication::Disabled => true,
        Authentication::Keys(keys) => keys.authenticate(&key).is_some(),
    };
    if !live {
        return HttpResponse::Unauthorized()
            .content_type("text/html; charset=utf-8")
            .body(
                html! { div.alert role="alert" { strong { "UNAUTHORIZED" } " That key is not valid: unknown, revoked or expired." } }
                    .into_string(),
            );
    }
    let secure = request.connection_info().scheme() == "https";
    let cookie = Cookie::build(SESSION_COOKIE, key)
        .path(DASHBOARD_PATH)
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .max_age(CookieAge::hours(SESSION_HOURS))
        .finish();
    let mut response = load_page(DASHBOARD_PATH);
    // A cookie this code built always renders as a valid header.
    let _ = response.add_cookie(&cookie);
    response
}

/// `POST /ui/logout`: forgets the key in this browser.
pub(super) async fn sign_out() -> HttpResponse {
    let mut cookie = Cookie::build(SESSION_COOKIE, "").path(DASHBOARD_PATH).finish();
    cookie.make_removal();
    let mut response = load_page("/ui/login");
    let _ = response.add_cookie(&cookie);
    response
}
