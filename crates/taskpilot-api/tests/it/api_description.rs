//! `/openapi.json` and `/docs`: the description lists exactly the routes TaskPilot serves,
//! and every answer they give is one it documents.

use serde_json::{json, Value};
use service_http::page_cursor::CURSOR_PATTERN;
use service_http::testing::api_spec;

use crate::harness::TestSystem;

/// Every route TaskPilot serves, as (method, path template).
const SERVED_ROUTES: &[(&str, &str)] = &[
    ("post", "/api/tasks"),
    ("get", "/api/tasks"),
    ("get", "/api/tasks/{id}"),
    ("post", "/api/tasks/{id}/scheduler"),
    ("get", "/api/tasks/{id}/execution"),
    ("put", "/api/tasks/{id}/execution/cancel"),
    ("get", "/api/tasks/{id}/events"),
    ("get", "/api/events"),
    ("post", "/api/admin/keys"),
    ("get", "/api/admin/keys"),
    ("delete", "/api/admin/keys/{id}"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
    ("get", "/docs"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_served_spec_describes_exactly_the_served_routes() {
    let system = TestSystem::spawn().await;
    let (status, spec) = system.send(system.http.get(system.url("/openapi.json"))).await;
    assert_eq!(status, 200);
    api_spec::assert_describes_exactly(&spec, SERVED_ROUTES);
    api_spec::assert_error_answers_are_error_bodies(&spec, &["/readyz"]);
    api_spec::assert_query_pattern(&spec, "get", "/api/tasks", "cursor", CURSOR_PATTERN);
    for schema in [
        "WebTaskResponse",
        "ExecutionView",
        "AttemptView",
        "ErrorBody",
        "BindRequest",
    ] {
        assert!(
            spec["components"]["schemas"][schema].is_object(),
            "{schema} missing"
        );
    }

    // Once for a bound web task and once for an id that does not exist: each operation is
    // routed, and every status it answers is one the description lists for it.
    let bound = system.create_web_task("report", json!({})).await;
    system.bound(bound, "demo").await;
    for id in [bound.to_string(), "999999".to_owned()] {
        for (method, path) in api_spec::described_operations(&spec) {
            let url = system.url(&path.replace("{id}", &id));
            let request = match (method.as_str(), path.as_str()) {
                ("get", _) => system.http.get(url),
                ("post", "/api/tasks") => system.http.post(url).json(&json!({"type": "report"})),
                ("post", "/api/admin/keys") => system.http.post(url).json(&json!({"scopes": ["tasks:read"]})),
                ("delete", _) => system.http.delete(url),
                ("post", _) => system.http.post(url).json(&json!({"schedulerType": "demo"})),
                ("put", _) => system.http.put(url),
                (other, _) => panic!("unexpected method {other}"),
            };
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            api_spec::assert_status_documented(&spec, &method, &path, status);
            if status == 404 {
                let body: Value = response.json().await.unwrap();
                assert_ne!(body["code"], "ROUTE_NOT_FOUND", "{method} {path} is not routed");
            }
        }
    }

    let docs = system.http.get(system.url("/docs")).send().await.unwrap();
    assert_eq!(docs.status(), 200);
    assert!(docs.text().await.unwrap().contains("/openapi.json"));
}
