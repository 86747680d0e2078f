//! The frame every dashboard page shares (head, navigation, who is signed in) and the small
//! pieces pages have in common: times, statuses, durations, JSON.

use chrono::{DateTime, Utc};
use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::assets;
use crate::domain::api_key::{Principal, Scope};

/// The page the navigation marks as current.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Section {
    Tasks,
    Overview,
    SignIn,
}

/// Who is looking, as far as a page needs to know.
pub(super) struct Viewer {
    pub tenant: String,
    /// Whether buttons that change anything are shown.
    pub can_write: bool,
    /// Whether a key signed in (there is nothing to sign out of with authentication off).
    pub signed_in: bool,
}

impl Viewer {
    pub fn of(principal: &Principal) -> Self {
        Self {
            tenant: principal.tenant.clone(),
            can_write: principal.may(Scope::TasksWrite),
            signed_in: principal.key_id.is_some(),
        }
    }
}

/// A whole page: `main` holds `body`; `viewer` is `None` on the sign-in page.
pub(super) fn page(title: &str, section: Section, viewer: Option<&Viewer>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                // Partial answers that are errors are shown too; htmx adds no inline styles (CSP).
                meta name="htmx-config" content=r#"{"includeIndicatorStyles":false,"allowScriptTags":false,"responseHandling":[{"code":"204","swap":false},{"code":"[23]..","swap":true},{"code":"[45]..","swap":true,"error":true}]}"#;
                title { (title) " · TaskPilot" }
                link rel="stylesheet" href=(assets::path("app.css"));
                link rel="stylesheet" href=(assets::path("uPlot.min.css"));
                script src=(assets::path("htmx.min.js")) defer {}
                script src=(assets::path("json-enc.js")) defer {}
                script src=(assets::path("uPlot.iife.min.js")) defer {}
                script src=(assets::path("app.js")) defer {}
            }
            body hx-ext="json-enc" {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/ui" { "TaskPilot" }
                    @if let Some(viewer) = viewer {
                        nav aria-label="Main" {
                            a href="/ui" aria-current=[(section == Section::Tasks).then_some("page")] { "Tasks" }
                            a href="/ui/overview" aria-current=[(section == Section::Overview).then_some("page")] { "Overview" }
                        }
                        span.who {
                            "Tenant " strong { (viewer.tenant) }
                            @if !viewer.can_write { " · " span.badge { "read only" } }
                        }
                        @if viewer.signed_in {
                            button.link type="button" hx-post="/ui/logout" hx-swap="none" { "Sign out" }
                        }
                    }
                }
                main #main tabindex="-1" { (body) }
            }
        }
    }
}

/// A time as people read it, with the exact instant for machines and screen readers.
pub(super) fn time(at: Option<DateTime<Utc>>) -> Markup {
    match at {
        Some(at) => html! {
            time datetime=(at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)) {
                (at.format("%Y-%m-%d %H:%M:%S%.3f"))
            }
        },
        None => html! { span.none { "—" } },
    }
}

/// A duration in milliseconds, or a dash when not (yet) known.
pub(super) fn millis(ms: Option<i64>) -> Markup {
    match ms {
        Some(ms) if ms >= 10_000 => html! { (format!("{:.1} s", ms as f64 / 1000.0)) },
        Some(ms) => html! { (ms) " ms" },
        None => html! { span.none { "—" } },
    }
}

/// A status as a badge; its class colours it.
pub(super) fn status(status: &str) -> Markup {
    html! { span class={ "status status-" (status.to_ascii_lowercase()) } { (status) } }
}

/// JSON, indented, escaped.
pub(super) fn json(value: &serde_json::Value) -> Markup {
    let text = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
    html! { pre.json { code { (text) } } }
}

/// Data a script reads (charts, the stream to follow), in a block the browser never runs.
pub(super) fn script_data(id: &str, value: &serde_json::Value) -> Markup {
    // `<` escaped so that no value can close the block.
    let text = value.to_string().replace('<', "\\u003c");
    html! { script type="application/json" id=(id) { (PreEscaped(text)) } }
}
