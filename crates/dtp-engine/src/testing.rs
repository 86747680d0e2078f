//! Test harness: `TestEngine` runs a real engine on a loopback port against a fresh
//! throwaway database, for black-box tests of the engine and of its clients (TaskPilot).
//! Tests bring their own HTTP client; the worker and rescuer can be stepped directly.
//! `seed_history` fills a database with a long queue history for plan checks and benchmarks.

use std::sync::Arc;
use std::time::Duration;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Int4};
use service_postgres::testing::TestDatabase;
use service_process::env_config::FixedSettings;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::EngineConfig;
use crate::domain::RetryPolicy;
use crate::startup::{Application, EngineBuilder};
use crate::worker::{TaskCleaner, TaskRescuer, Worker};

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
    cleaner: TaskCleaner,
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
        Self::spawn_with_types(tweak, |engine| engine).await
    }

    /// As `spawn_with`, with task types of the test's own: `types` registers them.
    pub async fn spawn_with_types(
        tweak: impl FnOnce(&mut EngineConfig),
        types: impl FnOnce(EngineBuilder) -> EngineBuilder,
    ) -> Self {
        let database = TestDatabase::migrated(TEST_DATABASE_PREFIX, crate::startup::MIGRATIONS);
        Self::spawn_on(Arc::new(database), tweak, types).await
    }

    /// As `spawn_with`, on a database that does not exist yet: the engine creates and
    /// migrates it, as on a first start.
    pub async fn spawn_on_missing_database(tweak: impl FnOnce(&mut EngineConfig)) -> Self {
        Self::spawn_on(
            Arc::new(TestDatabase::new(TEST_DATABASE_PREFIX)),
            tweak,
            |engine| engine,
        )
        .await
    }

    /// A second engine process on `other`'s database (another node of the same cluster).
    /// The database lives until every engine sharing it has dropped.
    pub async fn spawn_sharing(other: &TestEngine, tweak: impl FnOnce(&mut EngineConfig)) -> Self {
        Self::spawn_sharing_with_types(other, tweak, |engine| engine).await
    }

    /// As `spawn_sharing`, with task types of the test's own.
    pub async fn spawn_sharing_with_types(
        other: &TestEngine,
        tweak: impl FnOnce(&mut EngineConfig),
        types: impl FnOnce(EngineBuilder) -> EngineBuilder,
    ) -> Self {
        Self::spawn_on(Arc::clone(&other.database), tweak, types).await
    }

    async fn spawn_on(
        database: Arc<TestDatabase>,
        tweak: impl FnOnce(&mut EngineConfig),
        types: impl FnOnce(EngineBuilder) -> EngineBuilder,
    ) -> Self {
        if std::env::var_os("TEST_LOG").is_some() {
            service_process::telemetry::init("info");
        }
        let mut config = test_config(database.url());
        tweak(&mut config);
        let app = types(Application::builder(config.clone()))
            .build()
            .await
            .unwrap_or_else(|e| panic!("test engine failed to start: {e}"));
        let port = app.port();
        let worker = app.worker().clone();
        let rescuer = app.rescuer().clone();
        let cleaner = app.cleaner().clone();
        let shutdown = app.shutdown_token();
        let server = tokio::spawn(app.run_until_stopped());
        Self {
            port,
            base_url: format!("http://127.0.0.1:{port}"),
            config,
            worker,
            rescuer,
            cleaner,
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

    /// This engine's cleaner: `clean()` runs one cleanup on demand.
    pub fn cleaner(&self) -> &TaskCleaner {
        &self.cleaner
    }

    /// The database behind the engine, for assertions in SQL (`database().connect()`).
    pub fn database(&self) -> &TestDatabase {
        &self.database
    }

    /// Starts shutting the engine down as SIGTERM would, without waiting; `stop` waits.
    pub fn begin_stop(&self) {
        self.shutdown.cancel();
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
    // Tests of what callers may do turn it on, with a tokens file of their own.
    config.auth_enabled = false;
    config
}

/// `timeout_ms` of seeded tasks: the built-in types' default.
const SEEDED_TIMEOUT_MS: i32 = 300_000;

/// Fills a migrated engine database with a long-lived queue's history, straight through
/// SQL: `finished` SUCCEEDED tasks with their attempt rows, spread over the past, and
/// `future` PENDING tasks due in a day or later; then `VACUUM ANALYZE`, as a live database
/// would have been by autovacuum.
pub fn seed_history(conn: &mut PgConnection, finished: i64, future: i64) -> QueryResult<()> {
    // Satisfies the table's CHECKs: terminal with completed_at, no lease, attempts within max.
    diesel::sql_query(
        "WITH finished AS ( \
             INSERT INTO tasks (task_type, payload, status, retry_state, attempt_count, max_attempts, \
                                created_at, scheduled_for, processing_started_at, completed_at, \
                                updated_at, timeout_ms) \
             SELECT 'demo', jsonb_build_object('n', g), 'SUCCEEDED', 'COMPLETED', 1, 3, \
                    past.at, past.at, past.at + interval '5 ms', past.at + interval '15 ms', \
                    past.at + interval '15 ms', $2 \
             FROM generate_series(1, $1) AS g, \
                  LATERAL (SELECT now() - ($1 - g + 60) * interval '1 second' AS at) AS past \
             RETURNING id, created_at, processing_started_at, completed_at \
         ) INSERT INTO task_attempts (lease_token, task_id, attempt, worker_id, started_at, \
                                      finished_at, outcome, due_at) \
           SELECT nextval('task_lease_tokens'), id, 1, 'history', processing_started_at, completed_at, \
                  'SUCCEEDED', created_at FROM finished",
    )
    .bind::<BigInt, _>(finished)
    .bind::<Int4, _>(SEEDED_TIMEOUT_MS)
    .execute(conn)?;
    diesel::sql_query(
        "INSERT INTO tasks (task_type, payload, max_attempts, timeout_ms, scheduled_for) \
         SELECT 'demo', jsonb_build_object('n', g), 3, $2, now() + interval '1 day' + g * interval '1 second' \
         FROM generate_series(1, $1) AS g",
    )
    .bind::<BigInt, _>(future)
    .bind::<Int4, _>(SEEDED_TIMEOUT_MS)
    .execute(conn)?;
    for table in ["tasks", "task_attempts"] {
        diesel::sql_query(format!("VACUUM ANALYZE {table}")).execute(conn)?;
    }
    Ok(())
}
