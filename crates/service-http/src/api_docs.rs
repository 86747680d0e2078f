//! `/docs`: Swagger UI over the service's `/openapi.json`, its script and stylesheet served
//! from the binary (`assets/swagger-ui/`), so the page works offline and loads nothing from
//! elsewhere.

use actix_web::http::header::{CacheControl, CacheDirective};
use actix_web::{web, HttpResponse};

const BUNDLE: &str = include_str!("../assets/swagger-ui/swagger-ui-bundle.js");
const STYLESHEET: &str = include_str!("../assets/swagger-ui/swagger-ui.css");
/// The assets' paths name their release, so a browser may keep them for good.
const ASSETS: &str = "/docs/assets/5.35.0";

/// The page, titled for the service.
pub fn page(title: &str) -> HttpResponse {
    let page = format!(
        r##"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} API</title>
<link rel="stylesheet" href="{ASSETS}/swagger-ui.css"></head>
<body><div id="ui"></div>
<script src="{ASSETS}/swagger-ui-bundle.js"></script>
<script>window.ui = SwaggerUIBundle({{ url: "/openapi.json", dom_id: "#ui" }});</script>
</body></html>"##
    );
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(page)
}

/// Registers the page's assets. They hold nothing of the service and are open: a browser
/// cannot send a bearer token with a `<script>` or `<link>`.
pub fn configure_assets(cfg: &mut web::ServiceConfig) {
    cfg.route(
        &format!("{ASSETS}/swagger-ui-bundle.js"),
        web::get().to(|| async { asset("text/javascript; charset=utf-8", BUNDLE) }),
    )
    .route(
        &format!("{ASSETS}/swagger-ui.css"),
        web::get().to(|| async { asset("text/css; charset=utf-8", STYLESHEET) }),
    );
}

fn asset(content_type: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header(CacheControl(vec![
            CacheDirective::Public,
            CacheDirective::MaxAge(31_536_000),
            CacheDirective::Extension("immutable".into(), None),
        ]))
        .body(body)
}
