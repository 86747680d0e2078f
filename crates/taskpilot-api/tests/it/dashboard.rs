//! The dashboard over HTTP (the browser tests in `tests/browser` drive it in chromium): who
//! may see and change what, the sign-in cookie, the security headers, the compiled-in assets,
//! and a bulk cancel that acts only on the count it was confirmed with.

use dtp_engine::testing::TestEngine;
use reqwest::redirect::Policy;
use serde_json::json;

use crate::harness::{count_rows, send, TestTaskPilot};
use crate::keys::key;

struct Dashboard {
    dtp: TestEngine,
    taskpilot: TestTaskPilot,
    /// Follows no redirect, so that each can be checked.
    http: reqwest::Client,
}

/// Both services with authentication on; the engine's worker is off, so tasks stay PENDING.
async fn dashboard() -> Dashboard {
    let dtp = TestEngine::spawn_with(|c| c.worker_enabled = false).await;
    let taskpilot = TestTaskPilot::spawn(dtp.base_url(), |c| c.auth_enabled = true).await;
    Dashboard {
        dtp,
        taskpilot,
        http: reqwest::Client::builder()
            .redirect(Policy::none())
            .build()
            .unwrap(),
    }
}

impl Dashboard {
    fn get(&self, path: &str, key: &str) -> reqwest::RequestBuilder {
        self.http
            .get(self.taskpilot.url(path))
            .header("cookie", format!("taskpilot_key={key}"))
    }

    /// A JSON post as htmx's `json-enc` sends it, with the sign-in cookie.
    fn post(&self, path: &str, key: &str, body: serde_json::Value) -> reqwest::RequestBuilder {
        self.http
            .post(self.taskpilot.url(path))
            .header("cookie", format!("taskpilot_key={key}"))
            .header("hx-request", "true")
            .json(&body)
    }

    /// A web task of `task_type` bound to `demo`, through the API; its id.
    async fn bound_task(&self, key: &str, task_type: &str) -> i64 {
        let (status, created) = send(
            self.http
                .post(self.taskpilot.url("/api/tasks"))
                .bearer_auth(key)
                .json(&json!({"type": task_type})),
        )
        .await;
        assert_eq!(status, 201, "{created}");
        let id = created["id"].as_i64().unwrap();
        let (status, bound) = send(
            self.http
                .post(self.taskpilot.url(&format!("/api/tasks/{id}/scheduler")))
                .bearer_auth(key)
                .json(&json!({"schedulerType": "demo"})),
        )
        .await;
        assert_eq!(status, 201, "{bound}");
        id
    }

    async fn execution_status(&self, key: &str, id: i64) -> String {
        let (status, view) = send(
            self.http
                .get(self.taskpilot.url(&format!("/api/tasks/{id}/execution")))
                .bearer_auth(key),
        )
        .await;
        assert_eq!(status, 200, "{view}");
        view["status"].as_str().unwrap().to_owned()
    }
}

async fn text(response: reqwest::Response) -> (u16, String) {
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn pages_need_a_live_key_and_a_wrong_one_signs_nothing_in() {
    let d = dashboard().await;
    let admin = key(&d.taskpilot, "acme", "admin").await;

    let root = d.http.get(d.taskpilot.url("/")).send().await.unwrap();
    assert_eq!(root.status(), 302);
    assert_eq!(root.headers()["location"], "/ui");
    let page = d.http.get(d.taskpilot.url("/ui")).send().await.unwrap();
    assert_eq!(page.status(), 303, "a browser without a key is sent to sign in");
    assert_eq!(page.headers()["location"], "/ui/login");
    let partial = d
        .http
        .get(d.taskpilot.url("/ui/overview"))
        .header("hx-request", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(partial.status(), 401);
    assert_eq!(partial.headers()["hx-redirect"], "/ui/login");

    let wrong = d
        .http
        .post(d.taskpilot.url("/ui/login"))
        .json(&json!({"key": "tp_wrong_0000000000000000000000000000"}))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(
        wrong.headers().get("set-cookie").is_none(),
        "nothing is set for a wrong key"
    );
    assert!(wrong.text().await.unwrap().contains("UNAUTHORIZED"));

    let signed_in = d
        .http
        .post(d.taskpilot.url("/ui/login"))
        .json(&json!({ "key": admin }))
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 200);
    assert_eq!(signed_in.headers()["hx-redirect"], "/ui");
    let cookie = signed_in.headers()["set-cookie"].to_str().unwrap().to_owned();
    for attribute in ["taskpilot_key=tp_", "HttpOnly", "SameSite=Strict", "Path=/ui"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }

    let (status, html) = text(d.get("/ui", &admin).send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert!(html.contains("<h1>Tasks</h1>") && html.contains("acme"), "{html}");
    // The cookie is the dashboard's only: the API still wants the bearer key.
    let api = d.get("/api/tasks", &admin).send().await.unwrap();
    assert_eq!(api.status(), 401);
}

#[tokio::test]
async fn pages_forbid_inline_code_and_frames_and_take_only_json_posts() {
    let d = dashboard().await;
    let admin = key(&d.taskpilot, "acme", "admin").await;
    let page = d.get("/ui/login", &admin).send().await.unwrap();
    let policy = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        policy.contains("script-src 'self'") && policy.contains("frame-ancestors 'none'"),
        "{policy}"
    );
    assert_eq!(page.headers()["x-content-type-options"], "nosniff");

    let form = d
        .http
        .post(d.taskpilot.url("/ui/tasks"))
        .header("cookie", format!("taskpilot_key={admin}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("type=x&payload=%7B%7D")
        .send()
        .await
        .unwrap();
    assert_eq!(
        form.status(),
        415,
        "a cross-site form could send this; it is refused"
    );
    assert_eq!(d.taskpilot.web_task_count(), 0);
    let id = d.bound_task(&admin, "report").await;
    let forged = d
        .http
        .post(d.taskpilot.url(&format!("/ui/tasks/{id}/cancel")))
        .header("cookie", format!("taskpilot_key={admin}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        forged.status(),
        403,
        "a post without htmx's header is not the dashboard's"
    );
    assert_eq!(d.execution_status(&admin, id).await, "PENDING");

    let script = d.get("/ui/assets/htmx.min.js", &admin).send().await.unwrap();
    assert_eq!(script.status(), 200);
    assert!(script.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    let missing = d.get("/ui/assets/nothing.js", &admin).send().await.unwrap();
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn a_read_only_key_sees_no_action_and_changes_nothing() {
    let d = dashboard().await;
    let admin = key(&d.taskpilot, "acme", "admin").await;
    let reader = key(&d.taskpilot, "acme", "tasks:read").await;
    let id = d.bound_task(&admin, "report").await;

    let (status, list) = text(d.get("/ui", &reader).send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert!(
        list.contains(&format!("id=\"task-{id}\"")),
        "the reader sees the task"
    );
    assert!(
        !list.contains("New task") && !list.contains("Cancel all matching"),
        "{list}"
    );
    let (_, task) = text(d.get(&format!("/ui/tasks/{id}"), &reader).send().await.unwrap()).await;
    assert!(
        task.contains("execution-status") && !task.contains("Cancel execution"),
        "{task}"
    );

    let (status, refusal) = text(
        d.post("/ui/tasks", &reader, json!({"type": "x", "payload": "{}"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 403);
    assert!(
        refusal.contains("lacks the tasks:write scope"),
        "shown in the page: {refusal}"
    );
    let canceled = d
        .post(&format!("/ui/tasks/{id}/cancel"), &reader, json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(canceled.status(), 403);
    let bulk = d
        .post("/ui/bulk-cancel", &reader, json!({"confirm": "1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bulk.status(), 403);
    assert_eq!(d.taskpilot.web_task_count(), 1);
    assert_eq!(d.execution_status(&admin, id).await, "PENDING");

    // Another tenant's task is not there at all.
    let stranger = key(&d.taskpilot, "other", "admin").await;
    let foreign = d.get(&format!("/ui/tasks/{id}"), &stranger).send().await.unwrap();
    assert_eq!(foreign.status(), 404);
}

#[tokio::test]
async fn bulk_cancel_counts_what_the_filter_matches_and_acts_only_on_that_count() {
    let d = dashboard().await;
    let admin = key(&d.taskpilot, "acme", "admin").await;
    let mut matching = Vec::new();
    for _ in 0..3 {
        matching.push(d.bound_task(&admin, "nightly").await);
    }
    let other_type = d.bound_task(&admin, "hourly").await;
    let (status, _) = send(
        d.http
            .post(d.taskpilot.url("/api/tasks"))
            .bearer_auth(&admin)
            .json(&json!({"type": "nightly"})),
    )
    .await;
    assert_eq!(status, 201, "an unbound one: nothing to cancel");

    let (status, preview) = text(
        d.get("/ui/bulk-cancel?type=nightly&status=", &admin)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert!(preview.contains("data-count=\"3\""), "{preview}");

    let filter =
        |confirm: &str| json!({"type": "nightly", "status": "", "executionStatus": "", "confirm": confirm});
    let (status, refused) = text(
        d.post("/ui/bulk-cancel", &admin, filter("4"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    assert!(refused.contains("CONFIRMATION_MISMATCH"), "{refused}");
    for id in &matching {
        assert_eq!(
            d.execution_status(&admin, *id).await,
            "PENDING",
            "a wrong count cancels nothing"
        );
    }

    let (status, done) = text(
        d.post("/ui/bulk-cancel", &admin, filter("3"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{done}");
    assert!(done.contains("<strong>3</strong> canceled"), "{done}");
    for id in &matching {
        assert_eq!(d.execution_status(&admin, *id).await, "CANCELED");
    }
    assert_eq!(
        d.execution_status(&admin, other_type).await,
        "PENDING",
        "outside the filter"
    );
    let mut conn = d.dtp.database().connect();
    assert_eq!(
        count_rows(&mut conn, "tasks"),
        4,
        "the engine holds the four bound tasks, no more"
    );
}
