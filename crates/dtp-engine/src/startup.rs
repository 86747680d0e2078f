//! Builds the engine: its task types (demo types, the builder's `Task`s, the types file),
//! database (created and migrated), HTTP server on its listener, worker and rescuer;
//! `run_until_stopped` runs them side by side until shutdown.

use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::web;
use diesel_migrations::{embed_migrations, EmbeddedMigrations};
use service_http::deployment_secrets;
use service_http::metrics::{HttpMetrics, MetricsRegistry};
use service_http::rate_limit::RateLimiter;
use service_http::server::{self, ListenError, ServerLimits};
use service_postgres::database::{self, BootstrapError, DatabaseUrl};
use service_postgres::PgPool;
use tokio_util::sync::CancellationToken;

use crate::change_feed::ChangeFeed;
use crate::config::EngineConfig;
use crate::domain::new_task::{TaskTypes, DEFAULT_MAX_ATTEMPTS};
use crate::domain::EngineTypeDefaults;
use crate::http::auth::Authentication;
use crate::http::operations::{EngineApiDoc, Operations};
use crate::http::{self, AppState};
use crate::leasing::WorkerLeases;
use crate::metrics::EngineMetrics;
use crate::service_tokens::{ServiceTokens, TokensFileError};
use crate::store::tasks::Tasks;
use crate::task_types::http_target::{self, HttpTarget};
use crate::task_types::types_file::{self, DeclaredKind, TypesFileError};
use crate::task_types::{RegistryError, Task, TaskTypeRegistry, TypeKind};
use crate::worker::{TaskCleaner, TaskEventListener, TaskRescuer, Worker};

/// Per-attempt time limit of a type that does not choose its own: five minutes.
pub const DEFAULT_TASK_TIMEOUT_MS: i32 = 300_000;

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/dtp");

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Database(#[from] BootstrapError),
    #[error(transparent)]
    TypesFile(#[from] TypesFileError),
    #[error(transparent)]
    TaskType(#[from] RegistryError),
    #[error("cannot build the HTTP client for HTTP targets: {0}")]
    HttpClient(#[source] reqwest::Error),
    #[error("cannot move pending tasks to the queues of their types: {0}")]
    AssignQueues(#[source] crate::store::StoreError),
    #[error("cannot read the deployment's cursor key: {0}")]
    CursorKey(#[source] crate::store::StoreError),
    #[error(transparent)]
    TokensFile(#[from] TokensFileError),
    #[error(
        "DTP_AUTH is on (the default) but DTP_API_TOKENS_FILE is not set: every call would be refused; \
         name a tokens file, or set DTP_AUTH=disabled for a local experiment"
    )]
    NoTokens,
    #[error(transparent)]
    Listen(#[from] ListenError),
}

pub struct Application {
    port: u16,
    server: Server,
    pool: PgPool,
    worker: Worker,
    rescuer: TaskRescuer,
    cleaner: TaskCleaner,
    listener_url: String,
    worker_enabled: bool,
    shutdown: CancellationToken,
}

/// Builds an engine with task types of its own beside those of the types file.
///
/// ```no_run
/// # use dtp_engine::task_types::{Task, TaskContext, TaskError, TaskOutput};
/// # struct Resize;
/// # impl Task for Resize {
/// #     const TYPE: &'static str = "resize";
/// #     type Payload = serde_json::Value;
/// #     async fn run(&self, _: TaskContext, _: serde_json::Value) -> Result<TaskOutput, TaskError> { Ok(None) }
/// # }
/// # async fn example(config: dtp_engine::config::EngineConfig) -> Result<(), Box<dyn std::error::Error>> {
/// use dtp_engine::startup::Application;
/// let app = Application::builder(config).register(Resize).build().await?;
/// app.run_until_stopped().await?;
/// # Ok(()) }
/// ```
pub struct EngineBuilder {
    config: EngineConfig,
    registry: TaskTypeRegistry,
    /// The first registration that failed; reported by `build`.
    refused: Option<RegistryError>,
}

impl EngineBuilder {
    fn new(config: EngineConfig) -> Self {
        let defaults = EngineTypeDefaults {
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            timeout_ms: DEFAULT_TASK_TIMEOUT_MS,
            retry: config.worker.retry,
            lease: config.worker.lease,
        };
        let mut builder = Self {
            registry: TaskTypeRegistry::new(defaults),
            refused: None,
            config,
        };
        if builder.config.demo_types {
            let added = builder.registry.add_demo_types();
            builder.note(added);
        }
        builder
    }

    /// Registers a typed handler under `T::TYPE`, with `T::options()`.
    pub fn register<T: Task>(mut self, task: T) -> Self {
        let registered = self.registry.register_task(task);
        self.note(registered);
        self
    }

    fn note(&mut self, registered: Result<(), RegistryError>) {
        if let Err(e) = registered {
            self.refused.get_or_insert(e);
        }
    }

    /// Reads the types file, prepares the database and binds the listener; nothing runs
    /// until `run_until_stopped`.
    pub async fn build(mut self) -> Result<Application, StartupError> {
        if let Some(refused) = self.refused.take() {
            return Err(refused.into());
        }
        if let Some(path) = self.config.task_types_file.clone() {
            add_types_file(&mut self.registry, &path)?;
        }
        Application::start(self.config, self.registry).await
    }
}

/// Registers every type of the types file at `path`.
fn add_types_file(registry: &mut TaskTypeRegistry, path: &str) -> Result<(), StartupError> {
    let declared = types_file::read(path, &|name| std::env::var(name).ok())?;
    let client = declared
        .iter()
        .any(|t| matches!(t.kind, DeclaredKind::Http(_)))
        .then(http_target::shared_client)
        .transpose()
        .map_err(StartupError::HttpClient)?;
    for declared in declared {
        let registered = match (&declared.kind, &client) {
            (DeclaredKind::Http(spec), Some(client)) => registry.register_http(
                &declared.name,
                HttpTarget::info(spec),
                declared.options,
                Arc::new(HttpTarget::new(spec, client.clone())),
            ),
            (DeclaredKind::External { lease }, _) => {
                registry.register_external(&declared.name, declared.options, *lease)
            }
            (DeclaredKind::Http(_), None) => unreachable!("a client is built when the file has HTTP types"),
        };
        registered.map_err(|e| in_types_file(path, e))?;
    }
    Ok(())
}

/// How the engine knows its callers: the tokens file, unless `DTP_AUTH=disabled`. A worker
/// token may be limited only to external types of this engine.
fn authentication(
    config: &EngineConfig,
    registry: &TaskTypeRegistry,
) -> Result<Authentication, StartupError> {
    if !config.auth_enabled {
        tracing::warn!(
            "DTP_AUTH=disabled: anyone who can reach this engine may do anything; never expose it"
        );
        return Ok(Authentication::Disabled);
    }
    let path = config.api_tokens_file.as_deref().ok_or(StartupError::NoTokens)?;
    let tokens = ServiceTokens::read(path, &|name| std::env::var(name).ok())?;
    for (token, types) in tokens.limited_workers() {
        if let Some(unknown) = types
            .iter()
            .find(|t| !matches!(registry.get(t).map(|r| &r.kind), Some(TypeKind::External { .. })))
        {
            return Err(TokensFileError {
                file: path.to_owned(),
                token: Some(token.to_owned()),
                field: Some("types".into()),
                problem: format!("{unknown:?} is not an external task type of this engine"),
            }
            .into());
        }
    }
    Ok(Authentication::Tokens(tokens))
}

/// A refused registration of a file type, told as a problem of the file.
fn in_types_file(path: &str, refused: RegistryError) -> TypesFileError {
    let (type_name, field, problem) = match refused {
        RegistryError::InvalidName { name, source } => (name, None, source.to_string()),
        RegistryError::InvalidOption { name, source } => {
            (name, Some(source.field.to_owned()), source.problem)
        }
        RegistryError::Duplicate(name) => (
            name,
            None,
            "is registered twice: a demo type or a handler of this engine has this name".to_owned(),
        ),
    };
    TypesFileError {
        file: path.to_owned(),
        type_name: Some(type_name),
        field,
        problem,
    }
}

impl Application {
    /// The engine with the demo types (unless `config.demo_types` is off) and the types file.
    pub async fn build(config: EngineConfig) -> Result<Self, StartupError> {
        Self::builder(config).build().await
    }

    /// An engine with handlers of its own: `Application::builder(config).register(MyTask).build()`.
    pub fn builder(config: EngineConfig) -> EngineBuilder {
        EngineBuilder::new(config)
    }

    async fn start(config: EngineConfig, registry: TaskTypeRegistry) -> Result<Self, StartupError> {
        let authentication = web::Data::new(authentication(&config, &registry)?);
        let db = DatabaseUrl::parse(&config.database_url)?;
        let db_url_for_listener = db.as_str().to_owned();
        let pool_size = config.db_pool_size;
        let pool = tokio::task::spawn_blocking(move || database::bootstrap(&db, MIGRATIONS, pool_size))
            .await
            .map_err(|e| BootstrapError::Pool(e.to_string()))??;
        let queues: Vec<(String, bool)> = registry
            .types()
            .map(|t| (t.name.clone(), t.queue().is_type_queue()))
            .collect();
        let tasks = Tasks::start(pool.clone());
        let moved = tasks
            .assign_queues(queues)
            .await
            .map_err(StartupError::AssignQueues)?;
        if moved > 0 {
            tracing::info!(
                tasks = moved,
                "moved pending tasks to the queues their types' settings now give them"
            );
        }
        let cursor_key = deployment_secrets::cursor_key(&pool)
            .await
            .map_err(StartupError::CursorKey)?;
        let registry = Arc::new(registry);
        let mut metrics_registry = prometheus_client::registry::Registry::default();
        let http_metrics = web::Data::new(HttpMetrics::register(&mut metrics_registry));
        let engine_metrics = Arc::new(EngineMetrics::register(&mut metrics_registry));
        let worker = Worker::new(
            tasks.clone(),
            Arc::clone(&registry),
            config.worker.clone(),
            Arc::clone(&engine_metrics),
        );
        let rescuer = TaskRescuer::new(
            tasks.clone(),
            config.worker.rescue_interval,
            Arc::clone(&engine_metrics),
        );
        let external_types: Vec<String> = registry
            .types()
            .filter(|t| matches!(t.kind, TypeKind::External { .. }))
            .map(|t| t.name.clone())
            .collect();
        let operations = web::Data::new(Operations {
            pool: pool.clone(),
            worker: worker.clone(),
            api_description: EngineApiDoc::for_task_types(
                &registry.names(),
                &external_types,
                config.lease_max_wait_ms,
            ),
            external_types,
            metrics: Arc::clone(&engine_metrics),
            registry: MetricsRegistry::new(metrics_registry),
        });
        let bound = server::bind(&config.http_addr)?;
        let port = bound.port();
        let shutdown = CancellationToken::new();
        let leases = WorkerLeases::start(
            tasks.clone(),
            Arc::clone(&registry),
            worker.clone(),
            Arc::clone(&engine_metrics),
            config.lease_max_wait_ms,
            shutdown.clone(),
        );
        let rate_limiter = RateLimiter::new(config.rate_limit);
        let state = web::Data::new(AppState {
            registry,
            worker: worker.clone(),
            tasks,
            leases,
            feed: ChangeFeed::new(pool.clone(), worker.feed_signal().clone(), shutdown.clone()),
            cursor_key,
            rate_limiter: rate_limiter.clone(),
        });
        let max_body = config.max_body_bytes;
        let limits = ServerLimits {
            workers: config.http_workers,
            shutdown_timeout_secs: config.worker.shutdown_grace.as_secs().max(1),
            max_connections: config.max_connections,
            max_body_bytes: config.max_body_bytes,
            body_budget_bytes: config.body_budget_bytes,
            cors_origins: config.cors_origins.clone(),
        };
        let server = server::start(
            bound,
            limits,
            rate_limiter,
            http_metrics,
            http::auth::identify,
            move |cfg| {
                cfg.app_data(authentication.clone());
                http::configure(cfg, state.clone(), max_body);
                http::operations::configure(cfg, operations.clone());
            },
        )?;
        tracing::info!(port, worker.id = %worker.id(), "dtp-engine listening");
        Ok(Self {
            port,
            server,
            cleaner: TaskCleaner::new(pool.clone(), config.retention),
            pool,
            worker,
            rescuer,
            listener_url: db_url_for_listener,
            worker_enabled: config.worker_enabled,
            shutdown,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn worker(&self) -> &Worker {
        &self.worker
    }

    pub fn rescuer(&self) -> &TaskRescuer {
        &self.rescuer
    }

    pub fn cleaner(&self) -> &TaskCleaner {
        &self.cleaner
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Firing this token stops the server, the worker (gracefully) and the rescuer.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Serves HTTP and runs the worker and rescuer until the shutdown token fires.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        // The listener also wakes workers' long-polls for leases, so it runs on API-only nodes too.
        let listener = TaskEventListener::new(self.listener_url.clone(), self.worker.clone());
        let listener = tokio::spawn(listener.run(self.shutdown.clone()));
        let announcer = tokio::spawn(
            self.worker
                .feed_signal()
                .clone()
                .announce(self.pool.clone(), self.shutdown.clone()),
        );
        let background = self.worker_enabled.then(|| {
            (
                tokio::spawn(self.worker.clone().run(self.shutdown.clone())),
                tokio::spawn(self.rescuer.clone().run(self.shutdown.clone())),
                tokio::spawn(self.cleaner.clone().run(self.shutdown.clone())),
            )
        });
        let served = server::serve_until_stopped(self.server, &self.shutdown).await;
        self.shutdown.cancel();
        if let Some((worker, rescuer, cleaner)) = background {
            let _ = worker.await;
            let _ = rescuer.await;
            let _ = cleaner.await;
        }
        let _ = listener.await;
        let _ = announcer.await;
        tracing::info!("dtp-engine stopped");
        served
    }
}
