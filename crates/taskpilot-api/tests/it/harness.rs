//! `TestSystem`: a TaskPilot wired to a DTP engine, each on a fresh database, plus the
//! small HTTP helpers the tests share. As in the engine's tests, a call that must succeed has
//! a typed helper (`bound`, `execution_view`, `wait_for_status`) that reads the answer as a
//! client would; a call whose refusal or exact JSON is under test goes through the raw ones
//! (`bind`, `execution`, `cancel`, `send`), which answer the status and the body.

use std::sync::Arc;
use std::time::Duration;

use diesel::prelude::*;
use dtp_contract::{RetryState, TaskStatus};
use dtp_engine::config::EngineConfig;
use dtp_engine::startup::EngineBuilder;
use dtp_engine::testing::TestEngine;
use serde::Deserialize;
use serde_json::Value;
use service_postgres::testing::TestDatabase;
use service_process::env_config::FixedSettings;
use taskpilot_api::config::TaskPilotConfig;
use taskpilot_api::startup::Application;
use tokio_util::sync::CancellationToken;

pub struct TestTaskPilot {
    pub base_url: String,
    pub database: Arc<TestDatabase>,
    shutdown: CancellationToken,
}

impl TestTaskPilot {
    /// TaskPilot on a fresh database, talking to the scheduler at `scheduler_url`.
    pub async fn spawn(scheduler_url: &str, tweak: impl FnOnce(&mut TaskPilotConfig)) -> Self {
        let database = TestDatabase::migrated("web", taskpilot_api::startup::MIGRATIONS);
        Self::spawn_on(Arc::new(database), scheduler_url, tweak).await
    }

    /// As `spawn`, on a database that does not exist yet: TaskPilot creates and migrates it.
    pub async fn spawn_on_missing_database(
        scheduler_url: &str,
        tweak: impl FnOnce(&mut TaskPilotConfig),
    ) -> Self {
        Self::spawn_on(Arc::new(TestDatabase::new("web")), scheduler_url, tweak).await
    }

    /// A second TaskPilot process on `other`'s database.
    pub async fn spawn_sharing(
        other: &TestTaskPilot,
        scheduler_url: &str,
        tweak: impl FnOnce(&mut TaskPilotConfig),
    ) -> Self {
        Self::spawn_on(Arc::clone(&other.database), scheduler_url, tweak).await
    }

    /// TaskPilot on `database` (of a TaskPilot that has stopped, for a restart).
    pub async fn spawn_on(
        database: Arc<TestDatabase>,
        scheduler_url: &str,
        tweak: impl FnOnce(&mut TaskPilotConfig),
    ) -> Self {
        if std::env::var_os("TEST_LOG").is_some() {
            service_process::telemetry::init("info");
        }
        let mut config = test_config(&database, scheduler_url);
        tweak(&mut config);
        let app = Application::build(config).await.expect("taskpilot starts");
        let base_url = format!("http://127.0.0.1:{}", app.port());
        let shutdown = app.shutdown_token();
        tokio::spawn(app.run_until_stopped());
        Self {
            base_url,
            database,
            shutdown,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Starts stopping this process, as SIGTERM would.
    pub fn stop(&self) {
        self.shutdown.cancel();
    }

    /// Rows in `web_tasks`, read behind the service's back.
    pub fn web_task_count(&self) -> i64 {
        count_rows(&mut self.database.connect(), "web_tasks")
    }
}

impl Drop for TestTaskPilot {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The settings of a test TaskPilot: loopback port 0, a short scheduler timeout.
pub fn test_config(database: &TestDatabase, scheduler_url: &str) -> TaskPilotConfig {
    let mut config = TaskPilotConfig::from_source(&FixedSettings(&[])).unwrap();
    config.database_url = database.url();
    config.http_addr = "127.0.0.1:0".into();
    config.http_workers = 1;
    config.scheduler_url = scheduler_url.to_owned();
    config.scheduler_timeout = Duration::from_secs(3);
    // Tests of keys and tenants turn it on.
    config.auth_enabled = false;
    // Followed only where a real engine answers (`TestSystem`), not a stub's routes.
    config.execution_mirror = false;
    config
}

/// A web task as a client reads it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebTask {
    pub id: i64,
    #[serde(rename = "type")]
    pub task_type: String,
    pub payload: Value,
    pub status: String,
    pub scheduler_task_id: Option<i64>,
    pub scheduler_type: Option<String>,
    pub execution: Option<Value>,
}

/// A page of `GET /api/tasks` as a client reads it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebTaskPage {
    pub items: Vec<WebTask>,
    pub next_cursor: Option<String>,
}

/// A web task's execution view as a client reads it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionView {
    pub scheduler_task_id: i64,
    pub status: TaskStatus,
    pub retry_state: RetryState,
    pub attempt_count: i32,
    pub last_error: Option<String>,
    pub result: Option<Value>,
    pub archived: bool,
}

/// Both services, wired together.
pub struct TestSystem {
    pub dtp: TestEngine,
    pub taskpilot: TestTaskPilot,
    pub http: reqwest::Client,
}

impl TestSystem {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(tweak_engine: impl FnOnce(&mut EngineConfig)) -> Self {
        Self::spawn_with_types(tweak_engine, |engine| engine).await
    }

    /// Both services; the engine also runs the task types `types` registers.
    pub async fn spawn_with_types(
        tweak_engine: impl FnOnce(&mut EngineConfig),
        types: impl FnOnce(EngineBuilder) -> EngineBuilder,
    ) -> Self {
        let dtp = TestEngine::spawn_with_types(tweak_engine, types).await;
        let taskpilot = TestTaskPilot::spawn(dtp.base_url(), |config| config.execution_mirror = true).await;
        Self {
            dtp,
            taskpilot,
            http: reqwest::Client::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        self.taskpilot.url(path)
    }

    /// Creates a web task and returns its id.
    pub async fn create_web_task(&self, task_type: &str, payload: Value) -> i64 {
        let (status, body) = self
            .send(
                self.http
                    .post(self.url("/api/tasks"))
                    .json(&serde_json::json!({"type": task_type, "payload": payload})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["id"].as_i64().unwrap()
    }

    /// Binds a web task; returns the status and body.
    pub async fn bind(&self, id: i64, scheduler_type: &str) -> (u16, Value) {
        self.send(
            self.http
                .post(self.url(&format!("/api/tasks/{id}/scheduler")))
                .json(&serde_json::json!({"schedulerType": scheduler_type})),
        )
        .await
    }

    /// Binds a web task, which must be bound by this call (201).
    pub async fn bound(&self, id: i64, scheduler_type: &str) -> WebTask {
        let (status, body) = self.bind(id, scheduler_type).await;
        assert_eq!(status, 201, "{body}");
        serde_json::from_value(body).expect("a web task")
    }

    /// `GET /api/tasks{query}`, which must answer 200.
    pub async fn list(&self, query: &str) -> WebTaskPage {
        let (status, page) = self
            .send(self.http.get(self.url(&format!("/api/tasks{query}"))))
            .await;
        assert_eq!(status, 200, "GET /api/tasks{query}: {page}");
        serde_json::from_value(page).expect("a page of web tasks")
    }

    /// The execution view of a bound web task, which must be readable (200).
    pub async fn execution_view(&self, id: i64) -> ExecutionView {
        let (status, body) = self.execution(id).await;
        assert_eq!(status, 200, "{body}");
        serde_json::from_value(body).expect("an execution view")
    }

    pub async fn execution(&self, id: i64) -> (u16, Value) {
        self.send(self.http.get(self.url(&format!("/api/tasks/{id}/execution"))))
            .await
    }

    pub async fn cancel(&self, id: i64) -> (u16, Value) {
        self.send(
            self.http
                .put(self.url(&format!("/api/tasks/{id}/execution/cancel"))),
        )
        .await
    }

    /// Sends a request; returns the status and the JSON body (`Null` when empty).
    pub async fn send(&self, request: reqwest::RequestBuilder) -> (u16, Value) {
        send(request).await
    }

    /// Polls the execution view until its status is `status`, failing the test after `within`.
    pub async fn wait_for_status(&self, id: i64, status: TaskStatus, within: Duration) -> ExecutionView {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let view = self.execution_view(id).await;
            if view.status == status {
                return view;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "execution never reached {status}; last: {view:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Rows in DTP's `tasks`, read behind the engine's back.
    pub fn scheduler_task_count(&self) -> i64 {
        count_rows(&mut self.dtp.database().connect(), "tasks")
    }
}

/// Waits until the scheduler has no task left PENDING or RUNNING.
pub async fn wait_until_scheduler_idle(dtp: &TestEngine) {
    let deadline = tokio::time::Instant::now() + crate::PATIENCE * 2;
    loop {
        let busy = count_rows_where(
            &mut dtp.database().connect(),
            "tasks",
            "status IN ('PENDING', 'RUNNING')",
        );
        if busy == 0 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{busy} tasks never finished"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.expect("request reaches the service");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("status {status}: body is not JSON: {text:?}"))
    };
    (status, body)
}

/// Asserts an error body: JSON with the given code and a non-empty message.
pub fn assert_error(body: &Value, code: &str) {
    assert_eq!(body["code"], code, "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// The `n` a counting statement (`SELECT count(*) AS n ...`) answers.
pub fn count(conn: &mut PgConnection, sql: &str) -> i64 {
    diesel::sql_query(sql).get_result::<Count>(conn).unwrap().n
}

pub fn count_rows(conn: &mut PgConnection, table: &str) -> i64 {
    count(conn, &format!("SELECT count(*) AS n FROM {table}"))
}

pub fn count_rows_where(conn: &mut PgConnection, table: &str, condition: &str) -> i64 {
    count(
        conn,
        &format!("SELECT count(*) AS n FROM {table} WHERE {condition}"),
    )
}

/// A `taskpilot-api` process of its own on `config`'s database and scheduler, on `port`,
/// authentication off, with `env` besides; its output discarded.
pub fn taskpilot_process(config: &TaskPilotConfig, port: u16, env: &[(&str, &str)]) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_taskpilot-api"))
        .env("TASKPILOT_DATABASE_URL", &config.database_url)
        .env("TASKPILOT_HTTP_ADDR", format!("127.0.0.1:{port}"))
        .env("TASKPILOT_SCHEDULER_URL", &config.scheduler_url)
        .env("TASKPILOT_AUTH", "disabled")
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}
