//! Builds TaskPilot: database (created and migrated), scheduler client and HTTP server;
//! `run_until_stopped` serves until the shutdown token fires.

use std::net::TcpListener;

use actix_web::dev::Server;
use actix_web::{web, App, HttpServer};
use diesel_migrations::{embed_migrations, EmbeddedMigrations};
use service_http::body_budget::BodyBudget;
use service_http::metrics::{HttpMetrics, MetricsRegistry};
use service_http::rate_limit::RateLimiter;
use service_http::{connections, cross_origin, deployment_secrets, http_errors, request_trace};
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
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        #[source]
        source: std::io::Error,
    },
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
        let listen_error = |source| StartupError::Listen {
            addr: config.http_addr.clone(),
            source,
        };
        let listener = TcpListener::bind(&config.http_addr).map_err(listen_error)?;
        let port = listener.local_addr().map_err(listen_error)?.port();
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
        let rate_limiter = web::Data::new(RateLimiter::new(config.rate_limit));
        let max_body = config.max_body_bytes;
        let public_ops = config.public_ops;
        let cors_origins = web::Data::new(cross_origin::AllowedOrigins::new(&config.cors_origins));
        let connection_limit = connections::ConnectionLimit::within_descriptors(config.max_connections);
        let body_budget = web::Data::new(BodyBudget::new(config.body_budget_bytes, config.max_body_bytes));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(authentication.clone())
                .app_data(body_budget.clone())
                .app_data(rate_limiter.clone())
                .wrap(actix_web::middleware::from_fn(http::auth::identify))
                .wrap(actix_web::middleware::from_fn(http_errors::guard_requests))
                .wrap(http_errors::json_error_bodies())
                .wrap(actix_web::middleware::from_fn(request_trace::trace_requests))
                .app_data(http_metrics.clone())
                .configure(|cfg| http::configure(cfg, state.clone(), max_body))
                .configure(|cfg| http::operations::configure(cfg, operations.clone(), public_ops))
                .default_service(web::to(http_errors::route_not_found))
                .wrap(actix_web::middleware::from_fn(connections::watch_requests))
                // Outermost: a preflight is answered before authentication, which it cannot carry.
                .app_data(cors_origins.clone())
                .wrap(actix_web::middleware::from_fn(cross_origin::cross_origin))
        })
        .on_connect(move |connection, data| connection_limit.on_connect(connection, data))
        .workers(config.http_workers)
        .disable_signals()
        .shutdown_timeout(5)
        .listen(listener)
        .map_err(listen_error)?
        .run();
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
        let handle = self.server.handle();
        let mut server = tokio::spawn(self.server);
        let keys = tokio::spawn(self.keys.follow(self.database_url.clone(), self.shutdown.clone()));
        let streams = tokio::spawn(self.streams.follow(self.database_url, self.shutdown.clone()));
        let follower = self
            .follower
            .map(|follower| tokio::spawn(follower.run(self.shutdown.clone())));
        let served = tokio::select! {
            served = &mut server => served,
            () = self.shutdown.cancelled() => {
                handle.stop(true).await;
                server.await
            }
        };
        self.shutdown.cancel();
        let _ = keys.await;
        let _ = streams.await;
        if let Some(follower) = follower {
            let _ = follower.await;
        }
        tracing::info!("taskpilot-api stopped");
        served.unwrap_or_else(|e| Err(std::io::Error::other(e)))
    }
}
