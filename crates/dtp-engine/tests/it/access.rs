//! Who may call what, with service tokens: every route but the probes refuses a request
//! without a valid token (401, `WWW-Authenticate: Bearer`) and one whose role does not reach
//! it (403), changing nothing; a worker token limited to some types leases only those;
//! idempotency keys belong to the token that used them; a tokens file that cannot be used
//! stops the engine.

use std::collections::BTreeMap;

use dtp_engine::config::EngineConfig;
use dtp_engine::testing::TestEngine;
use reqwest::StatusCode;
use serde_json::{json, Value};
use service_http::rate_limit::Quota;

use crate::api::{expect_error, EngineApi};
use crate::sql;
use crate::types_files::TypesFile;

const SUBMITTER: &str = "submitter-secret-0001";
const OTHER_SUBMITTER: &str = "submitter-secret-0002";
const WORKER: &str = "worker-secret-resize-01";
const ADMIN: &str = "admin-secret-operator-1";

/// An engine with authentication on, its tokens in the environment.
async fn guarded() -> (TestEngine, TypesFile, TypesFile) {
    guarded_with(|_| {}).await
}

async fn guarded_with(tweak: impl FnOnce(&mut EngineConfig)) -> (TestEngine, TypesFile, TypesFile) {
    for (name, secret) in [
        ("DTP_IT_SUBMITTER", SUBMITTER),
        ("DTP_IT_OTHER_SUBMITTER", OTHER_SUBMITTER),
        ("DTP_IT_WORKER", WORKER),
        ("DTP_IT_ADMIN", ADMIN),
    ] {
        std::env::set_var(name, secret);
    }
    let tokens = TypesFile::write(
        "[tokens.taskpilot]\nsecret_env = \"DTP_IT_SUBMITTER\"\nrole = \"submitter\"\n\
         [tokens.billing]\nsecret_env = \"DTP_IT_OTHER_SUBMITTER\"\nrole = \"submitter\"\n\
         [tokens.resizer]\nsecret_env = \"DTP_IT_WORKER\"\nrole = \"worker\"\ntypes = [\"resize\"]\n\
         [tokens.ops]\nsecret_env = \"DTP_IT_ADMIN\"\nrole = \"admin\"\n",
    );
    let types =
        TypesFile::write("[types.resize]\nkind = \"external\"\n[types.render]\nkind = \"external\"\n");
    let dtp = TestEngine::spawn_with(|config| {
        config.worker_enabled = false;
        config.auth_enabled = true;
        config.api_tokens_file = Some(tokens.path());
        config.task_types_file = Some(types.path());
        tweak(config);
    })
    .await;
    (dtp, tokens, types)
}

/// Every route, with a body it takes, and the role that reaches it (`None`: open).
fn routes() -> Vec<(&'static str, &'static str, Value, Option<&'static str>)> {
    let task = json!({"type": "demo"});
    let lease = json!({"workerId": "w", "types": ["resize"]});
    vec![
        ("POST", "/tasks", task.clone(), Some("submitter")),
        ("GET", "/tasks", Value::Null, Some("submitter")),
        (
            "POST",
            "/tasks/batch",
            json!({"tasks": [task]}),
            Some("submitter"),
        ),
        ("GET", "/tasks/1", Value::Null, Some("submitter")),
        ("PUT", "/tasks/1/cancel", Value::Null, Some("submitter")),
        ("GET", "/tasks/1/attempts", Value::Null, Some("submitter")),
        ("GET", "/task-types", Value::Null, Some("submitter")),
        ("GET", "/events", Value::Null, Some("submitter")),
        ("POST", "/leases", lease, Some("worker")),
        ("POST", "/leases/AAAA/heartbeat", json!({}), Some("worker")),
        ("POST", "/leases/AAAA/complete", json!({}), Some("worker")),
        ("POST", "/leases/AAAA/fail", json!({"error": "x"}), Some("worker")),
        ("POST", "/leases/AAAA/release", Value::Null, Some("worker")),
        ("GET", "/metrics", Value::Null, Some("admin")),
        ("GET", "/openapi.json", Value::Null, Some("admin")),
        ("GET", "/docs", Value::Null, Some("admin")),
        ("GET", "/docs/assets/5.35.0/swagger-ui.css", Value::Null, None),
        ("GET", "/healthz", Value::Null, None),
        ("GET", "/readyz", Value::Null, None),
    ]
}

async fn call(
    api: &EngineApi,
    method: &str,
    path: &str,
    body: &Value,
    authorization: Option<&str>,
) -> reqwest::Response {
    let mut request = api.client().request(method.parse().unwrap(), api.url(path));
    if !body.is_null() {
        request = request.json(body);
    }
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    request.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_needs_a_token_whose_role_reaches_it() {
    let (dtp, _tokens, _types) = guarded().await;
    let api = EngineApi::new(&dtp);
    let tokens: BTreeMap<&str, String> = [
        ("submitter", format!("Bearer {SUBMITTER}")),
        ("worker", format!("Bearer {WORKER}")),
        ("admin", format!("Bearer {ADMIN}")),
    ]
    .into();
    let bad = [
        "",
        "Bearer",
        "Bearer ",
        "Basic c3VibWl0dGVyOnNlY3JldA==",
        &format!("Bearer {SUBMITTER}x"),
        "Bearer admin-secret-operator-2",
    ];
    for (method, path, body, needs) in routes() {
        let Some(needs) = needs else {
            for authorization in [None, Some("Bearer wrong")] {
                let response = call(&api, method, path, &body, authorization).await;
                assert_eq!(response.status(), StatusCode::OK, "{method} {path} is open");
            }
            continue;
        };
        for authorization in bad {
            let sent = (!authorization.is_empty()).then_some(authorization);
            let response = call(&api, method, path, &body, sent).await;
            assert_eq!(
                response
                    .headers()
                    .get("www-authenticate")
                    .map(|v| v.to_str().unwrap()),
                Some("Bearer"),
                "{method} {path} with {authorization:?}"
            );
            expect_error(response, StatusCode::UNAUTHORIZED, "UNAUTHORIZED").await;
        }
        for (role, authorization) in &tokens {
            let response = call(&api, method, path, &body, Some(authorization)).await;
            let reaches = *role == needs || *role == "admin";
            if reaches {
                assert!(
                    ![StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN].contains(&response.status()),
                    "{role} reaches {method} {path}: {response:?}"
                );
            } else {
                expect_error(response, StatusCode::FORBIDDEN, "FORBIDDEN").await;
            }
        }
    }
    // Only the admin's and the submitter's POSTs made tasks: two of each kind of submission.
    assert_eq!(sql::count_tasks(dtp.database()), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_token_leases_only_its_types() {
    let (dtp, _tokens, _types) = guarded().await;
    let api = EngineApi::new(&dtp);
    let submitter = format!("Bearer {SUBMITTER}");
    for task_type in ["resize", "render"] {
        let created = call(
            &api,
            "POST",
            "/tasks",
            &json!({"type": task_type}),
            Some(&submitter),
        )
        .await;
        assert_eq!(created.status(), StatusCode::CREATED);
    }
    let worker = format!("Bearer {WORKER}");
    let refused = call(
        &api,
        "POST",
        "/leases",
        &json!({"workerId": "w", "types": ["resize", "render"]}),
        Some(&worker),
    )
    .await;
    expect_error(refused, StatusCode::FORBIDDEN, "FORBIDDEN").await;
    let granted = call(
        &api,
        "POST",
        "/leases",
        &json!({"workerId": "w", "types": ["resize"], "max": 5}),
        Some(&worker),
    )
    .await;
    assert_eq!(granted.status(), StatusCode::OK);
    let leases: Value = granted.json().await.unwrap();
    assert_eq!(leases["leases"].as_array().unwrap().len(), 1);
    assert_eq!(leases["leases"][0]["type"], "resize");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_belongs_to_the_token_that_used_it() {
    let (dtp, _tokens, _types) = guarded().await;
    let api = EngineApi::new(&dtp);
    let (ours, theirs) = (format!("Bearer {SUBMITTER}"), format!("Bearer {OTHER_SUBMITTER}"));
    let task = json!({"type": "demo", "payload": {"n": 1}, "idempotencyKey": "taskpilot-web-task-7"});
    // Another caller takes the key first: it gets a task of its own, and ours is untouched by it.
    let planted = call(&api, "POST", "/tasks", &json!({"type": "demo", "payload": "evil", "idempotencyKey": "taskpilot-web-task-7", "runAt": "9999-01-01T00:00:00Z", "timeoutMs": 1}), Some(&theirs)).await;
    assert_eq!(planted.status(), StatusCode::CREATED);
    let planted: Value = planted.json().await.unwrap();
    let first = call(&api, "POST", "/tasks", &task, Some(&ours)).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: Value = first.json().await.unwrap();
    assert_ne!(first["id"], planted["id"]);
    assert_eq!(first["payload"], json!({"n": 1}));
    let again = call(&api, "POST", "/tasks", &task, Some(&ours)).await;
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(again.json::<Value>().await.unwrap()["id"], first["id"]);
    // A repeat must ask for the same task in every field.
    for changed in [
        json!({"type": "demo", "payload": {"n": 1}, "idempotencyKey": "taskpilot-web-task-7", "timeoutMs": 1}),
        json!({"type": "demo", "payload": {"n": 1}, "idempotencyKey": "taskpilot-web-task-7", "runAt": "2030-01-01T00:00:00Z"}),
        json!({"type": "demo", "payload": {"n": 1}, "idempotencyKey": "taskpilot-web-task-7", "maxAttempts": 9}),
    ] {
        let reused = call(&api, "POST", "/tasks", &changed, Some(&ours)).await;
        expect_error(reused, StatusCode::CONFLICT, "IDEMPOTENCY_KEY_REUSED").await;
    }
    assert_eq!(sql::count_tasks(dtp.database()), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_token_has_its_own_quota_and_a_batch_costs_one_per_task() {
    let (dtp, _tokens, _types) = guarded_with(|config| {
        config.rate_limit = Quota {
            per_second: 1,
            burst: 4,
        };
    })
    .await;
    let api = EngineApi::new(&dtp);
    let submitter: &'static str = format!("Bearer {SUBMITTER}").leak();
    let other = format!("Bearer {OTHER_SUBMITTER}");
    let one = json!({"type": "demo"});
    let submit = |authorization: &'static str| call(&api, "POST", "/tasks", &one, Some(authorization));

    let batch = json!({"tasks": [{"type": "demo"}, {"type": "demo"}, {"type": "demo"}]});
    let response = call(&api, "POST", "/tasks/batch", &batch, Some(submitter)).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(submit(submitter).await.status(), StatusCode::CREATED);
    let limited = call(&api, "POST", "/tasks/batch", &batch, Some(submitter)).await;
    let retry_after = limited.headers()["retry-after"].to_str().unwrap().to_owned();
    assert_eq!(retry_after, "1");
    let error = expect_error(limited, StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED").await;
    assert!(error.message.contains("1 requests per second"), "{error:?}");
    let reads = call(&api, "GET", "/tasks", &Value::Null, Some(submitter)).await;
    assert_eq!(
        reads.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "every route counts"
    );
    // A batch over what is left is refused whole.
    let response = call(&api, "POST", "/tasks/batch", &batch, Some(&other)).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let response = call(&api, "POST", "/tasks/batch", &batch, Some(&other)).await;
    expect_error(response, StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED").await;
    assert_eq!(
        sql::count_tasks(dtp.database()),
        7,
        "refused requests stored nothing"
    );
    // Probes are never limited.
    for _ in 0..10 {
        let probe = call(&api, "GET", "/healthz", &Value::Null, None).await;
        assert_eq!(probe.status(), StatusCode::OK);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submitter_reads_the_events_of_its_own_tasks_only() {
    let (dtp, _tokens, _types) = guarded().await;
    let api = EngineApi::new(&dtp);
    let (ours, theirs, admin) = (
        format!("Bearer {SUBMITTER}"),
        format!("Bearer {OTHER_SUBMITTER}"),
        format!("Bearer {ADMIN}"),
    );
    let mine: Value = call(&api, "POST", "/tasks", &json!({"type": "demo"}), Some(&ours))
        .await
        .json()
        .await
        .unwrap();
    let other: Value = call(&api, "POST", "/tasks", &json!({"type": "demo"}), Some(&theirs))
        .await
        .json()
        .await
        .unwrap();
    // Follows the feed as `token` until it has `count` events, then one read more.
    let read = |token: String, count: usize| {
        let api = &api;
        async move {
            let mut ids = Vec::new();
            let mut after = String::new();
            for _ in 0..20 {
                let path = format!("/events?waitMs=500{after}");
                let response = call(api, "GET", &path, &Value::Null, Some(&token)).await;
                assert_eq!(response.status(), StatusCode::OK);
                let page = response.json::<Value>().await.unwrap();
                let before = ids.len();
                ids.extend(
                    page["events"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|e| e["taskId"].clone()),
                );
                after = format!("&after={}", page["nextCursor"].as_str().unwrap());
                if ids.len() >= count && ids.len() == before {
                    break;
                }
            }
            ids
        }
    };
    assert_eq!(read(ours, 1).await, [mine["id"].clone()]);
    assert_eq!(read(theirs, 1).await, [other["id"].clone()]);
    let every = read(admin, 2).await;
    assert!(
        every.len() == 2 && every.contains(&mine["id"]) && every.contains(&other["id"]),
        "{every:?}"
    );
}
