//! Builds TaskPilot: database (created and migrated), scheduler client and HTTP server;
//! `run_until_stopped` serves until the shutdown token fires.

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

use crate::api_keys::ApiKeys;
use crate::config::TaskPilotConfig;
use crate::event_streams::EventStreams;
use crate::execution_follower::ExecutionFollower;
use crate::execution_link::ExecutionLinks;
use crate::http::auth::Authentication;
use crate::http::operations::Operations;
use crate::http::{self, AppState};
use crate::metrics::SchedulerMetrics;
use crate::scheduler_client::SchedulerClient;
use crate::store::web_tasks::WebTasks;

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/webdb");

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Database(#[from] BootstrapError),
    #[error("cannot build the scheduler client: {0}")]
    SchedulerClient(#[from] reqwest::Error),
    #[error("cannot read the API keys: {0}")]
    Keys(#[source] crate::store::StoreError),
    #[error("cannot read the deployment's cursor key: {0}")]
    CursorKey(#[source] crate::store::StoreError),
    #[error(transparent)]
    Listen(#[from] ListenError),
}

pub struct Application {
    port: u16,
    server: Server,
    pool: PgPool,
    keys: ApiKeys,
    follower: Option<ExecutionFollower>,
    streams: EventStreams,
    database_url: String,
    shutdown: CancellationToken,
}

impl Application {
    pub async fn build(config: TaskPilotConfig) -> Result<Self, StartupError> {
        let db = DatabaseUrl::parse(&config.database_url)?;
        let database_url = db.as_str().to_owned();
        let pool_size = config.db_pool_size;
        let pool = tokio::task::spawn_blocking(move || database::bootstrap(&db, MIGRATIONS, pool_size))
            .await
            .map_err(|e| BootstrapError::Pool(e.to_string()))??;
        let mut metrics_registry = prometheus_client::registry::Registry::default();
        let http_metrics = web::Data::new(HttpMetrics::register(&mut metrics_registry));
        let scheduler = SchedulerClient::new(
            &config.scheduler_url,
            config.scheduler_timeout,
            config.scheduler_token.as_deref(),
        )?
        .with_metrics(SchedulerMetrics::register(&mut metrics_registry));
        let operations = web::Data::new(Operations {
            pool: pool.clone(),
            scheduler: scheduler.clone(),
            registry: MetricsRegistry::new(metrics_registry),
        });
        let bound = server::bind(&config.http_addr)?;
        let port = bound.port();
        let keys = ApiKeys::load(pool.clone()).await.map_err(StartupError::Keys)?;
        let cursor_key = deployment_secrets::cursor_key(&pool)
            .await
            .map_err(StartupError::CursorKey)?;
        let authentication = web::Data::new(if config.auth_enabled {
            Authentication::Keys(keys.clone())
        } else {
            tracing::warn!("TASKPILOT_AUTH=disabled: every request acts as tenant default with every scope; never expose this");
            Authentication::Disabled
        });
        let follower = config
            .execution_mirror
            .then(|| ExecutionFollower::new(pool.clone(), scheduler.clone(), config.event_retention));
        let shutdown = CancellationToken::new();
        let streams = EventStreams::new(pool.clone());
        let web_tasks = WebTasks::start(pool.clone());
        let state = web::Data::new(AppState {
            streams: streams.clone(),
            shutdown: shutdown.clone(),
            pool: pool.clone(),
            web_tasks: web_tasks.clone(),
            links: ExecutionLinks::new(web_tasks, scheduler.clone(), config.crash_after_scheduler_create),
            scheduler,
            keys: keys.clone(),
            scheduler_max_body_bytes: config.scheduler_max_body_bytes,
            cursor_key,
        });
        let max_body = config.max_body_bytes;
        let public_ops = config.public_ops;
        let limits = ServerLimits {
            workers: config.http_workers,
            shutdown_timeout_secs: 5,
            max_connections: config.max_connections,
            max_body_bytes: config.max_body_bytes,
            body_budget_bytes: config.body_budget_bytes,
            cors_origins: config.cors_origins.clone(),
        };
        let rate_limiter = RateLimiter::new(config.rate_limit);
        let server = server::start(
            bound,
            limits,
            rate_limiter,
            http_metrics,
            http::auth::identify,
            move |cfg| {
                cfg.app_data(authentication.clone());
                http::configure(cfg, state.clone(), max_body);
                http::operations::configure(cfg, operations.clone(), public_ops);
            },
        )?;
        tracing::info!(port, scheduler = %config.scheduler_url, "taskpilot-api listening");
        Ok(Self {
            port,
            server,
            pool,
            keys,
            follower,
            streams,
            database_url,
            shutdown,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Serves until the shutdown token fires, then drains in-flight requests. Meanwhile
    /// the key cache follows the database's announcements, and the execution follower the
    /// scheduler's change feed.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let keys = tokio::spawn(self.keys.follow(self.database_url.clone(), self.shutdown.clone()));
        let streams = tokio::spawn(self.streams.follow(self.database_url, self.shutdown.clone()));
        let follower = self
            .follower
            .map(|follower| tokio::spawn(follower.run(self.shutdown.clone())));
        let served = server::serve_until_stopped(self.server, &self.shutdown).await;
        self.shutdown.cancel();
        let _ = keys.await;
        let _ = streams.await;
        if let Some(follower) = follower {
            let _ = follower.await;
        }
        tracing::info!("taskpilot-api stopped");
        served
    }
}
