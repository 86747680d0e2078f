//! The dashboard's scripts and styles, compiled into the binary: nothing is fetched at run
//! time and nothing is built with Node. Third-party files sit under `assets/vendor/` at
//! pinned versions with their licences.

use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use actix_web::{web, HttpResponse};

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../../assets/app.css"),
    },
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../../assets/app.js"),
    },
    Asset {
        name: "htmx.min.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../../assets/vendor/htmx-2.0.11/htmx.min.js"),
    },
    Asset {
        name: "json-enc.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../../assets/vendor/htmx-ext-json-enc-2.0.3/json-enc.js"),
    },
    Asset {
        name: "uPlot.iife.min.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../../assets/vendor/uplot-1.6.32/uPlot.iife.min.js"),
    },
    Asset {
        name: "uPlot.min.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../../assets/vendor/uplot-1.6.32/uPlot.min.css"),
    },
];

/// Where a page links asset `name`; the version in the query makes a new build's files new
/// to the browser's cache.
pub(super) fn path(name: &str) -> String {
    format!("/ui/assets/{name}?v={}", env!("CARGO_PKG_VERSION"))
}

/// `GET /ui/assets/{name}`.
pub(super) async fn asset(name: web::Path<String>) -> HttpResponse {
    match ASSETS.iter().find(|a| a.name == name.as_str()) {
        Some(asset) => HttpResponse::Ok()
            .insert_header((CONTENT_TYPE, asset.content_type))
            .insert_header((CACHE_CONTROL, "public, max-age=86400"))
            .body(asset.body),
        None => HttpResponse::NotFound()
            .content_type("text/html; charset=utf-8")
            .body("<p>No such asset.</p>"),
    }
}
