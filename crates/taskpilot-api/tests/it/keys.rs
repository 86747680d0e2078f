//! API keys, scopes and tenants: every `/api` route needs a live key with its scope (401 with
//! `WWW-Authenticate: Bearer`, or 403), changing nothing when refused; one tenant never sees
//! another's web tasks; a revoked or expired key is refused at once on every process; admins
//! manage their own tenant's keys; the `keys` command makes, lists and revokes keys.

use std::process::Command;

use diesel::connection::SimpleConnection;
use dtp_engine::testing::TestEngine;
use serde_json::{json, Value};

use crate::harness::{assert_error, count_rows, send, TestTaskPilot};
use crate::PATIENCE;

/// Runs `taskpilot-api keys ...` on `taskpilot`'s database; its output.
fn keys_command(taskpilot: &TestTaskPilot, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_taskpilot-api"))
        .arg("keys")
        .args(args)
        .env("TASKPILOT_DATABASE_URL", taskpilot.database.url())
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).unwrap()
}

/// A new key of `tenant` with `scopes`, made by the command, once the running process knows
/// it: the command's announcement reaches the process's key cache asynchronously. The probe
/// is an admin route: a key without the scope is answered 403 before its quota is charged.
pub async fn key(taskpilot: &TestTaskPilot, tenant: &str, scopes: &str) -> String {
    let printed = keys_command(
        taskpilot,
        &["create", "--tenant", tenant, "--scopes", scopes, "--name", "test"],
    );
    let key = printed.trim().to_owned();
    assert!(key.starts_with("tp_"), "{printed:?}");
    let http = reqwest::Client::new();
    let deadline = std::time::Instant::now() + PATIENCE;
    while http
        .get(taskpilot.url("/api/admin/keys"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .status()
        == 401
    {
        assert!(std::time::Instant::now() < deadline, "the new key never worked");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    key
}

struct Guarded {
    _dtp: TestEngine,
    taskpilot: TestTaskPilot,
    http: reqwest::Client,
}

async fn guarded() -> Guarded {
    let dtp = TestEngine::spawn_with(|c| c.worker_enabled = false).await;
    let taskpilot = TestTaskPilot::spawn(dtp.base_url(), |c| c.auth_enabled = true).await;
    Guarded {
        _dtp: dtp,
        taskpilot,
        http: reqwest::Client::new(),
    }
}

impl Guarded {
    async fn call(
        &self,
        method: &str,
        path: &str,
        body: &Value,
        key: Option<&str>,
    ) -> (u16, Value, Option<String>) {
        let mut request = self
            .http
            .request(method.parse().unwrap(), self.taskpilot.url(path));
        if !body.is_null() {
            request = request.json(body);
        }
        if let Some(key) = key {
            request = request.header("authorization", format!("Bearer {key}"));
        }
        let response = request.send().await.unwrap();
        let challenge = response
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned());
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, body, challenge)
    }

    async fn create(&self, key: &str) -> i64 {
        let (status, body, _) = self
            .call("POST", "/api/tasks", &json!({"type": "report"}), Some(key))
            .await;
        assert_eq!(status, 201, "{body}");
        body["id"].as_i64().unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_needs_a_live_key_with_its_scope() {
    let g = guarded().await;
    let reader = key(&g.taskpilot, "acme", "tasks:read").await;
    let writer = key(&g.taskpilot, "acme", "tasks:write").await;
    let admin = key(&g.taskpilot, "acme", "admin").await;
    let id = g.create(&writer).await;
    let revoked = key(&g.taskpilot, "acme", "admin").await;
    let revoked_id = revoked.split('_').nth(1).unwrap().to_owned();
    keys_command(&g.taskpilot, &["revoke", &revoked_id]);
    let expired = key(&g.taskpilot, "acme", "admin").await;
    let expired_id = expired.split('_').nth(1).unwrap().to_owned();
    g.taskpilot
        .database
        .connect()
        .batch_execute(&format!(
            "UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = '{expired_id}'"
        ))
        .unwrap();
    let unknown = format!("tp_{}_{}", "a".repeat(12), "0".repeat(64));
    let last = if reader.ends_with('0') { '1' } else { '0' };
    let wrong_secret = format!("{}{last}", &reader[..reader.len() - 1]);

    let routes: Vec<(&str, String, Value, &str)> = vec![
        ("POST", "/api/tasks".into(), json!({"type": "x"}), "tasks:write"),
        ("GET", "/api/tasks".into(), Value::Null, "tasks:read"),
        ("GET", format!("/api/tasks/{id}"), Value::Null, "tasks:read"),
        (
            "POST",
            format!("/api/tasks/{id}/scheduler"),
            json!({"schedulerType": "demo"}),
            "tasks:write",
        ),
        (
            "GET",
            format!("/api/tasks/{id}/execution"),
            Value::Null,
            "tasks:read",
        ),
        (
            "PUT",
            format!("/api/tasks/{id}/execution/cancel"),
            Value::Null,
            "tasks:write",
        ),
        ("GET", "/api/admin/keys".into(), Value::Null, "admin"),
        (
            "POST",
            "/api/admin/keys".into(),
            json!({"scopes": ["tasks:read"]}),
            "admin",
        ),
        (
            "DELETE",
            "/api/admin/keys/nosuchkey000".into(),
            Value::Null,
            "admin",
        ),
        ("GET", "/metrics".into(), Value::Null, "admin"),
        ("GET", "/openapi.json".into(), Value::Null, "admin"),
        ("GET", "/docs".into(), Value::Null, "admin"),
    ];
    let web_tasks_before = count_rows(&mut g.taskpilot.database.connect(), "web_tasks");
    // The revocation and the expiry reach the cache through the database's announcement.
    let deadline = std::time::Instant::now() + PATIENCE;
    while g.call("GET", "/api/tasks", &Value::Null, Some(&expired)).await.0 != 401
        || g.call("GET", "/api/tasks", &Value::Null, Some(&revoked)).await.0 != 401
    {
        assert!(
            std::time::Instant::now() < deadline,
            "a revoked or expired key still works"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    for (method, path, body, scope) in &routes {
        let mut refusals = Vec::new();
        for bad in [
            None,
            Some("tp_"),
            Some("Basic xyz"),
            Some(unknown.as_str()),
            Some(wrong_secret.as_str()),
            Some(revoked.as_str()),
            Some(expired.as_str()),
        ] {
            let (status, answer, challenge) = g.call(method, path, body, bad).await;
            assert_eq!(status, 401, "{method} {path} with {bad:?}: {answer}");
            assert_error(&answer, "UNAUTHORIZED");
            assert_eq!(challenge.as_deref(), Some("Bearer"));
            refusals.push(answer);
        }
        assert_eq!(
            refusals[3], refusals[4],
            "an unknown key and a wrong secret get the same answer"
        );
        for (holder, scopes) in [
            (&reader, "tasks:read"),
            (&writer, "tasks:write"),
            (&admin, "admin"),
        ] {
            let (status, answer, _) = g.call(method, path, body, Some(holder)).await;
            if scopes == *scope || scopes == "admin" {
                assert!(
                    ![401, 403].contains(&status),
                    "{scopes} reaches {method} {path}: {status} {answer}"
                );
            } else {
                assert_eq!(status, 403, "{scopes} on {method} {path}: {answer}");
                assert_error(&answer, "FORBIDDEN");
            }
        }
    }
    // Only the writer's and the admin's creates made web tasks; refusals changed nothing.
    assert_eq!(
        count_rows(&mut g.taskpilot.database.connect(), "web_tasks"),
        web_tasks_before + 2
    );
    for open in ["/healthz", "/readyz"] {
        assert_eq!(
            g.call("GET", open, &Value::Null, None).await.0,
            200,
            "{open} is open"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_never_sees_another_tenant_s_tasks() {
    let g = guarded().await;
    let ours = key(&g.taskpilot, "acme", "tasks:read,tasks:write").await;
    let theirs = key(&g.taskpilot, "globex", "tasks:read,tasks:write").await;
    let id = g.create(&ours).await;
    for (method, path, body) in [
        ("GET", format!("/api/tasks/{id}"), Value::Null),
        (
            "POST",
            format!("/api/tasks/{id}/scheduler"),
            json!({"schedulerType": "demo"}),
        ),
        ("GET", format!("/api/tasks/{id}/execution"), Value::Null),
        ("PUT", format!("/api/tasks/{id}/execution/cancel"), Value::Null),
    ] {
        let (status, answer, _) = g.call(method, &path, &body, Some(&theirs)).await;
        let (missing_status, missing, _) = g
            .call(
                method,
                &path.replace(&id.to_string(), "999999"),
                &body,
                Some(&theirs),
            )
            .await;
        assert_eq!((status, missing_status), (404, 404), "{method} {path}: {answer}");
        assert_error(&answer, "WEB_TASK_NOT_FOUND");
        assert_eq!(
            answer["message"].as_str().unwrap().replace(&id.to_string(), "N"),
            missing["message"].as_str().unwrap().replace("999999", "N"),
            "another tenant's task is answered as one that does not exist"
        );
    }
    let (_, page, _) = g.call("GET", "/api/tasks", &Value::Null, Some(&theirs)).await;
    assert_eq!(page["items"], json!([]));
    let (_, page, _) = g.call("GET", "/api/tasks", &Value::Null, Some(&ours)).await;
    assert_eq!(page["items"][0]["id"], id);
    // A cursor is sealed to its tenant's listing: another tenant cannot page with it.
    g.create(&ours).await;
    let (_, page, _) = g
        .call("GET", "/api/tasks?limit=1", &Value::Null, Some(&ours))
        .await;
    let cursor = page["nextCursor"].as_str().unwrap();
    let path = format!("/api/tasks?limit=1&cursor={cursor}");
    let (status, answer, _) = g.call("GET", &path, &Value::Null, Some(&theirs)).await;
    assert_eq!(status, 400, "{answer}");
    assert_error(&answer, "INVALID_CURSOR");
    let (_, page, _) = g.call("GET", &path, &Value::Null, Some(&ours)).await;
    assert_eq!(page["items"][0]["id"], id);
    let (_, task, _) = g
        .call("GET", &format!("/api/tasks/{id}"), &Value::Null, Some(&ours))
        .await;
    assert_eq!(task["status"], "PENDING", "the other tenant's bind did nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_manage_their_own_tenant_s_keys_and_a_revocation_reaches_every_process() {
    let g = guarded().await;
    let admin = key(&g.taskpilot, "acme", "admin").await;
    let other_admin = key(&g.taskpilot, "globex", "admin").await;
    let second =
        TestTaskPilot::spawn_sharing(&g.taskpilot, g._dtp.base_url(), |c| c.auth_enabled = true).await;

    let (status, made, _) = g
        .call(
            "POST",
            "/api/admin/keys",
            &json!({"name": "reporting", "scopes": ["tasks:read"], "expiresInDays": 30}),
            Some(&admin),
        )
        .await;
    assert_eq!(status, 201, "{made}");
    assert_eq!(
        (made["tenant"].as_str(), made["name"].as_str()),
        (Some("acme"), Some("reporting"))
    );
    let made_key = made["key"].as_str().unwrap().to_owned();
    let made_id = made["id"].as_str().unwrap().to_owned();
    assert!(made["expiresAt"].is_string() && made["revokedAt"].is_null());
    let (_, listed, _) = g.call("GET", "/api/admin/keys", &Value::Null, Some(&admin)).await;
    let listed = listed.as_array().unwrap();
    assert!(
        listed
            .iter()
            .all(|k| k["tenant"] == "acme" && k.get("key").is_none()),
        "{listed:?}"
    );
    assert!(listed.iter().any(|k| k["id"] == made_id.as_str()));
    for bad in [
        json!({"scopes": []}),
        json!({"scopes": ["tasks:delete"]}),
        json!({"scopes": ["admin"], "expiresInDays": 0}),
    ] {
        let (status, answer, _) = g.call("POST", "/api/admin/keys", &bad, Some(&admin)).await;
        assert_eq!(status, 422, "{bad}: {answer}");
    }

    // The new key works on both processes; another tenant's admin cannot revoke it.
    let on_second = |key: String| {
        let url = second.url("/api/tasks");
        async move {
            send(
                reqwest::Client::new()
                    .get(url)
                    .header("authorization", format!("Bearer {key}")),
            )
            .await
            .0
        }
    };
    // The second process learns of the key from the database's announcement.
    let deadline = std::time::Instant::now() + PATIENCE;
    while on_second(made_key.clone()).await != 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "the other process never took the new key"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let (status, _, _) = g
        .call(
            "DELETE",
            &format!("/api/admin/keys/{made_id}"),
            &Value::Null,
            Some(&other_admin),
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(on_second(made_key.clone()).await, 200);
    let (status, _, _) = g
        .call(
            "DELETE",
            &format!("/api/admin/keys/{made_id}"),
            &Value::Null,
            Some(&admin),
        )
        .await;
    assert_eq!(status, 204);
    assert_eq!(
        g.call("GET", "/api/tasks", &Value::Null, Some(&made_key)).await.0,
        401,
        "at once here"
    );
    let deadline = std::time::Instant::now() + PATIENCE;
    while on_second(made_key.clone()).await != 401 {
        assert!(
            std::time::Instant::now() < deadline,
            "the other process still takes the revoked key"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let listing = keys_command(&g.taskpilot, &["list", "--tenant", "acme"]);
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with(&made_id) && !l.ends_with("\t-")),
        "revoked: {listing}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taskpilot_calls_dtp_with_its_service_token() {
    std::env::set_var("TP_IT_SCHEDULER_TOKEN", "taskpilot-service-token-01");
    let dir = std::env::temp_dir().join(format!("tp-it-tokens-{}.toml", std::process::id()));
    std::fs::write(
        &dir,
        "[tokens.taskpilot]\nsecret_env = \"TP_IT_SCHEDULER_TOKEN\"\nrole = \"submitter\"\n",
    )
    .unwrap();
    let tokens = dir.to_str().unwrap().to_owned();
    let dtp = TestEngine::spawn_with(|c| {
        c.auth_enabled = true;
        c.api_tokens_file = Some(tokens.clone());
    })
    .await;
    let with_token = TestTaskPilot::spawn(dtp.base_url(), |c| {
        c.scheduler_token = Some("taskpilot-service-token-01".into())
    })
    .await;
    let without = TestTaskPilot::spawn(dtp.base_url(), |_| {}).await;
    let http = reqwest::Client::new();
    for (taskpilot, expected) in [(&with_token, 201), (&without, 502)] {
        let (_, created) = send(
            http.post(taskpilot.url("/api/tasks"))
                .json(&json!({"type": "report"})),
        )
        .await;
        let id = created["id"].as_i64().unwrap();
        let (status, answer) = send(
            http.post(taskpilot.url(&format!("/api/tasks/{id}/scheduler")))
                .json(&json!({"schedulerType": "demo"})),
        )
        .await;
        assert_eq!(status, expected, "{answer}");
        if expected == 502 {
            assert_error(&answer, "SCHEDULER_ERROR");
            assert!(
                answer["message"]
                    .as_str()
                    .unwrap()
                    .contains("refused TaskPilot's credentials"),
                "{answer}"
            );
        }
    }
    let _ = std::fs::remove_file(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_key_has_its_own_quota() {
    let dtp = TestEngine::spawn_with(|c| c.worker_enabled = false).await;
    let taskpilot = TestTaskPilot::spawn(dtp.base_url(), |c| {
        c.auth_enabled = true;
        c.rate_limit = service_http::rate_limit::Quota {
            per_second: 1,
            burst: 2,
        };
    })
    .await;
    let g = Guarded {
        _dtp: dtp,
        taskpilot,
        http: reqwest::Client::new(),
    };
    let busy = key(&g.taskpilot, "acme", "tasks:read,tasks:write").await;
    let calm = key(&g.taskpilot, "acme", "tasks:read,tasks:write").await;
    g.create(&busy).await;
    let (status, _, _) = g.call("GET", "/api/tasks", &Value::Null, Some(&busy)).await;
    assert_eq!(status, 200);
    let (status, answer, _) = g
        .call("POST", "/api/tasks", &json!({"type": "report"}), Some(&busy))
        .await;
    assert_eq!(status, 429, "{answer}");
    assert_error(&answer, "RATE_LIMITED");
    g.create(&calm).await;
    assert_eq!(
        g.taskpilot.web_task_count(),
        2,
        "the refused create stored nothing"
    );
}
