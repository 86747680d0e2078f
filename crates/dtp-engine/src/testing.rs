//! Test harness: `TestEngine` runs a real engine on a loopback port against a fresh
//! throwaway database, for black-box tests of the engine and of its clients (TaskPilot).
//! Tests bring their own HTTP client; the worker and rescuer can be stepped directly.

use std::sync::Arc;
use std::time::Duration;

use service_runtime::env_config::FixedSettings;
use service_runtime::testing::TestDatabase;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::EngineConfig;
use crate::domain::RetryPolicy;
use crate::startup::Application;
use crate::worker::{TaskRescuer, Worker};

/// Prefix of the test databases' names.
const TEST_DATABASE_PREFIX: &str = "dtp";
/// Test engines poll often so that tests which wait for an outcome wait little.
pub const TEST_POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Short retry backoff, so that retries happen within a test's patience.
pub const TEST_RETRY_POLICY: RetryPolicy = RetryPolicy {
    base: Duration::from_millis(10),
    max: Duration::from_millis(500),
};
/// Short shutdown grace, so that `stop` returns quickly.
pub const TEST_SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// A running engine; it shuts down when dropped, and the last engine on a database drops it.
/// Its logs are shown when `TEST_LOG` is set (filtered by `RUST_LOG`).
///
/// ```no_run
/// # async fn example() {
/// use dtp_engine::testing::TestEngine;
/// let dtp = TestEngine::spawn_with(|config| config.worker_enabled = false).await;
/// let url = format!("{}/tasks", dtp.base_url());
/// // ... POST to `url`, then run what is due, deterministically:
/// dtp.worker().run_due_tasks().await.unwrap();
/// # }
/// ```
pub struct TestEngine {
    port: u16,
    base_url: String,
    config: EngineConfig,
    worker: Worker,
    rescuer: TaskRescuer,
    shutdown: CancellationToken,
    server: Option<JoinHandle<std::io::Result<()>>>,
    database: Arc<TestDatabase>,
}

impl TestEngine {
    /// An engine with the test defaults, worker running, on a fresh database.
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// An engine on a fresh database; `tweak` adjusts the test defaults before the build.
    pub async fn spawn_with(tweak: impl FnOnce(&mut EngineConfig)) -> Self {
        let database = Arc::new(TestDatabase::new(TEST_DATABASE_PREFIX));
        Self::spawn_on(database, tweak).await
    }

    /// A second engine process on `other`'s database (another node of the same cluster).
    /// The database lives until every engine sharing it has dropped.
    pub async fn spawn_sharing(other: &TestEngine, tweak: impl FnOnce(&mut EngineConfig)) -> Self {
        Self::spawn_on(Arc::clone(&other.database), tweak).await
    }

    async fn spawn_on(database: Arc<TestDatabase>, tweak: impl FnOnce(&mut EngineConfig)) -> Self {
        if std::env::var_os("TEST_LOG").is_some() {
            service_runtime::telemetry::init("info");
        }
        let mut config = test_config(database.url());
        tweak(&mut config);
        let app = Application::build(config.clone())
            .await
            .unwrap_or_else(|e| panic!("test engine failed to start: {e}"));
        let port = app.port();
        let worker = app.worker().clone();
        let rescuer = app.rescuer().clone();
        let shutdown = app.shutdown_token();
        let server = tokio::spawn(app.run_until_stopped());
        Self {
            port,
            base_url: format!("http://127.0.0.1:{port}"),
            config,
            worker,
            rescuer,
            shutdown,
            server: Some(server),
            database,
        }
    }

    /// `http://127.0.0.1:{port}`, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The settings this engine was built with.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// This engine's worker: `run_due_tasks()` drains the queue when the loop is disabled.
    pub fn worker(&self) -> &Worker {
        &self.worker
    }

    /// This engine's rescuer: `rescue_expired_leases()` runs one round on demand.
    pub fn rescuer(&self) -> &TaskRescuer {
        &self.rescuer
    }

    /// The database behind the engine, for assertions in SQL (`database().connect()`).
    pub fn database(&self) -> &TestDatabase {
        &self.database
    }

    /// Shuts the engine down as SIGTERM would and waits until it has stopped: the port is
    /// closed and unfinished attempts are released. The database stays until drop, so a
    /// restart is `spawn_sharing(&stopped, ..)`, on the same port if `http_addr` names it.
    pub async fn stop(&mut self) {
        self.shutdown.cancel();
        if let Some(server) = self.server.take() {
            match server.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => panic!("test engine stopped with an error: {e}"),
                Err(e) => panic!("test engine task failed: {e}"),
            }
        }
    }
}

impl Drop for TestEngine {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The defaults of `EngineConfig`, adjusted for tests: port 0 on loopback, one HTTP
/// worker, quick polling, short backoff and shutdown grace.
fn test_config(database_url: String) -> EngineConfig {
    let mut config =
        EngineConfig::from_source(&FixedSettings(&[])).expect("the default engine settings are valid");
    config.database_url = database_url;
    config.http_addr = "127.0.0.1:0".into();
    config.http_workers = 1;
    config.worker.poll_interval = TEST_POLL_INTERVAL;
    config.worker.retry = TEST_RETRY_POLICY;
    config.worker.shutdown_grace = TEST_SHUTDOWN_GRACE;
    config
}
