//! The services under measurement: release (or debug) `dtp-engine` and `taskpilot-api`
//! processes on loopback ports, configured only through their documented environment.

use std::path::PathBuf;
use std::time::Duration;

use dtp_chaos::credentials::{client_with, taskpilot_admin_key, Credentials};
use dtp_chaos::processes::{env_vars, free_port, sibling_binary, ServiceProcess};
use service_postgres::database::DatabaseUrl;

use crate::engine_db::EngineDatabase;

/// How long a stopping engine may finish its attempts before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// What every scenario works with: the Postgres server, the binaries, a client, a log folder.
pub struct Bench {
    pub server: DatabaseUrl,
    pub http: reqwest::Client,
    pub run_dir: PathBuf,
    pub engine_log: String,
    engine_bin: PathBuf,
    taskpilot_bin: PathBuf,
    worker_bin: PathBuf,
    /// Every service runs with authentication on; `http` presents the harness's token.
    credentials: Credentials,
}

/// The engine settings a scenario chooses; everything else keeps the engine's defaults.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// `DTP_WORKER_CONCURRENCY`.
    pub concurrency: usize,
    /// `DTP_DB_POOL_SIZE`; the engine's default (slots + 4, 8 to 20) when `None`.
    pub pool_size: Option<usize>,
    /// `DTP_WORKER_ENABLED`.
    pub worker_enabled: bool,
    /// `DTP_HTTP_WORKERS`, and `TASKPILOT_HTTP_WORKERS` of a TaskPilot beside this engine;
    /// the services' defaults when `None`.
    pub http_workers: Option<usize>,
    /// Log each handler's start (JSON lines, `dtp_engine::worker::attempt` at debug), so
    /// that pickup can be measured to the moment the handler starts.
    pub log_handler_starts: bool,
    /// `DTP_TASK_TYPES_FILE`.
    pub types_file: Option<PathBuf>,
    /// Authentication on (the default, as deployed); off only to measure what it costs.
    pub auth: bool,
    /// Further settings of the engine (e.g. retention).
    pub extra_env: Vec<(&'static str, String)>,
}

/// Where the engine logs "attempt started", as a handler is about to run.
const HANDLER_START_TARGET: &str = "dtp_engine::worker::attempt";

impl EngineSettings {
    pub fn worker(concurrency: usize, pool_size: Option<usize>, http_workers: Option<usize>) -> Self {
        Self {
            concurrency,
            pool_size,
            worker_enabled: true,
            http_workers,
            log_handler_starts: false,
            types_file: None,
            auth: true,
            extra_env: Vec::new(),
        }
    }

    pub fn api_only() -> Self {
        Self {
            concurrency: 1,
            pool_size: None,
            worker_enabled: false,
            http_workers: None,
            log_handler_starts: false,
            types_file: None,
            auth: true,
            extra_env: Vec::new(),
        }
    }

    /// The same settings with authentication off in the engine and TaskPilot.
    pub fn without_auth(mut self) -> Self {
        self.auth = false;
        self
    }

    /// A short label for tables, e.g. `c=256 pool=40`.
    pub fn label(&self) -> String {
        if !self.worker_enabled {
            return "worker off".into();
        }
        let mut label = format!("c={}", self.concurrency);
        if let Some(pool) = self.pool_size {
            label.push_str(&format!(" pool={pool}"));
        }
        if let Some(http) = self.http_workers {
            label.push_str(&format!(" http={http}"));
        }
        if !self.auth {
            label.push_str(" auth off");
        }
        label
    }
}

impl Bench {
    pub fn new(server: DatabaseUrl, engine_log: String) -> anyhow::Result<Self> {
        let run_dir = std::env::temp_dir().join(format!(
            "dtp-bench-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&run_dir)?;
        let credentials = Credentials::create(&run_dir)?;
        Ok(Self {
            server,
            http: credentials.engine_client(Duration::from_secs(30), 1024)?,
            credentials,
            run_dir,
            engine_log,
            engine_bin: sibling_binary("dtp-engine")?,
            taskpilot_bin: sibling_binary("taskpilot-api")?,
            worker_bin: sibling_binary("dtp-bench-worker")?,
        })
    }

    /// An engine process on `db` (not started yet).
    pub fn engine(
        &self,
        name: &str,
        db: &EngineDatabase,
        settings: &EngineSettings,
    ) -> anyhow::Result<ServiceProcess> {
        let port = free_port()?;
        let rust_log = if settings.log_handler_starts {
            format!("{},{HANDLER_START_TARGET}=debug", self.engine_log)
        } else {
            self.engine_log.clone()
        };
        let mut env = vec![
            ("DTP_DATABASE_URL", db.url().to_owned()),
            ("DTP_HTTP_ADDR", format!("127.0.0.1:{port}")),
            ("DTP_WORKER_CONCURRENCY", settings.concurrency.to_string()),
            ("DTP_WORKER_ENABLED", settings.worker_enabled.to_string()),
            ("RUST_LOG", rust_log),
        ];
        if settings.log_handler_starts {
            env.push(("LOG_FORMAT", "json".to_owned()));
        }
        if let Some(pool) = settings.pool_size {
            env.push(("DTP_DB_POOL_SIZE", pool.to_string()));
        }
        if let Some(http) = settings.http_workers {
            env.push(("DTP_HTTP_WORKERS", http.to_string()));
        }
        if let Some(types_file) = &settings.types_file {
            env.push(("DTP_TASK_TYPES_FILE", types_file.display().to_string()));
        }
        env.extend(self.credentials.engine_env());
        env.extend(settings.extra_env.iter().cloned());
        if !settings.auth {
            env.push(("DTP_AUTH", "disabled".to_owned()));
        }
        Ok(ServiceProcess::new(
            name,
            &self.engine_bin,
            env_vars(&env),
            port,
            &self.run_dir,
        ))
    }

    /// A TaskPilot process on a database of its own, calling `engine` (not started yet), with
    /// the HTTP workers of `settings` (the engine's).
    pub fn taskpilot(
        &self,
        web_db: &str,
        engine: &ServiceProcess,
        settings: &EngineSettings,
    ) -> anyhow::Result<ServiceProcess> {
        let port = free_port()?;
        let mut env = vec![
            ("TASKPILOT_DATABASE_URL", self.server.with_database(web_db)),
            ("TASKPILOT_HTTP_ADDR", format!("127.0.0.1:{port}")),
            ("TASKPILOT_SCHEDULER_URL", engine.base_url()),
            ("RUST_LOG", self.engine_log.clone()),
        ];
        if let Some(http) = settings.http_workers {
            env.push(("TASKPILOT_HTTP_WORKERS", http.to_string()));
        }
        env.extend(self.credentials.taskpilot_env());
        if !settings.auth {
            env.push(("TASKPILOT_AUTH", "disabled".to_owned()));
        }
        Ok(ServiceProcess::new(
            "taskpilot",
            &self.taskpilot_bin,
            env_vars(&env),
            port,
            &self.run_dir,
        ))
    }

    /// A `dtp-bench-worker` process leasing from `engine` with `concurrency` handlers (not
    /// started yet; it serves no HTTP, so start it with `spawn`). It logs each handler's start
    /// as JSON.
    pub fn worker(&self, name: &str, engine: &ServiceProcess, concurrency: usize) -> ServiceProcess {
        let env = [
            ("DTP_URL", engine.base_url()),
            ("WORKER_CONCURRENCY", concurrency.to_string()),
            ("RUST_LOG", format!("{},dtp_bench_worker=debug", self.engine_log)),
            ("LOG_FORMAT", "json".to_owned()),
            ("DTP_TOKEN", self.credentials.worker_token().to_owned()),
        ];
        ServiceProcess::new(name, &self.worker_bin, env_vars(&env), 0, &self.run_dir)
    }

    /// A client of the TaskPilot on database `web_db`, with an admin key made for it there.
    pub fn taskpilot_client(&self, web_db: &str) -> anyhow::Result<reqwest::Client> {
        let key = taskpilot_admin_key(&self.server.with_database(web_db), "bench")?;
        client_with(&key, Duration::from_secs(30), 1024)
    }

    /// Starts every process at the same moment and waits until all of them answer.
    pub async fn start_all(&self, processes: &mut [ServiceProcess]) -> anyhow::Result<()> {
        for process in processes.iter_mut() {
            process.spawn()?;
        }
        for process in processes.iter_mut() {
            process.wait_until_healthy(&self.http).await?;
        }
        Ok(())
    }

    /// Stops processes as SIGTERM would, each given its grace.
    pub fn stop_all(processes: &mut [ServiceProcess]) {
        for process in processes {
            process.terminate(STOP_GRACE);
        }
    }
}
