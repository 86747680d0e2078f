//! Builds the engine: database (created and migrated), HTTP server on its listener,
//! worker and rescuer; `run_until_stopped` runs them side by side until shutdown.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::{web, App, HttpServer};
use diesel_migrations::{embed_migrations, EmbeddedMigrations};
use service_runtime::database::{self, BootstrapError, DatabaseUrl};
use service_runtime::metrics::{HttpMetrics, MetricsRegistry};
use service_runtime::{http_errors, request_trace, PgPool};
use tokio_util::sync::CancellationToken;

use crate::config::EngineConfig;
use crate::domain::new_task::TaskTypes;
use crate::http::operations::{EngineApiDoc, Operations};
use crate::http::{self, AppState};
use crate::metrics::EngineMetrics;
use crate::submission::TaskSubmitter;
use crate::task_reader::TaskReader;
use crate::task_types::HandlerRegistry;
use crate::worker::{TaskEventListener, TaskRescuer, Worker};

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/dtp");

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Database(#[from] BootstrapError),
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
    worker: Worker,
    rescuer: TaskRescuer,
    listener_url: String,
    worker_enabled: bool,
    shutdown: CancellationToken,
}

impl Application {
    /// Prepares the database and binds the listener; nothing runs until `run_until_stopped`.
    pub async fn build(config: EngineConfig) -> Result<Self, StartupError> {
        let db = DatabaseUrl::parse(&config.database_url)?;
        let db_url_for_listener = db.as_str().to_owned();
        let pool_size = config.db_pool_size;
        let pool = tokio::task::spawn_blocking(move || database::bootstrap(&db, MIGRATIONS, pool_size))
            .await
            .map_err(|e| BootstrapError::Pool(e.to_string()))??;
        let registry = Arc::new(HandlerRegistry::with_builtin_types());
        let mut metrics_registry = prometheus_client::registry::Registry::default();
        let http_metrics = web::Data::new(HttpMetrics::register(&mut metrics_registry));
        let engine_metrics = Arc::new(EngineMetrics::register(&mut metrics_registry));
        let worker = Worker::new(
            pool.clone(),
            Arc::clone(&registry),
            config.worker.clone(),
            Arc::clone(&engine_metrics),
        );
        let rescuer = TaskRescuer::new(
            pool.clone(),
            config.worker.rescue_interval,
            Arc::clone(&engine_metrics),
        );
        let operations = web::Data::new(Operations {
            pool: pool.clone(),
            worker: worker.clone(),
            metrics: engine_metrics,
            registry: MetricsRegistry::new(metrics_registry),
            api_description: EngineApiDoc::for_task_types(&registry.names()),
        });
        let listen_error = |source| StartupError::Listen {
            addr: config.http_addr.clone(),
            source,
        };
        let listener = TcpListener::bind(&config.http_addr).map_err(listen_error)?;
        let port = listener.local_addr().map_err(listen_error)?.port();
        let state = web::Data::new(AppState {
            pool: pool.clone(),
            registry,
            worker: worker.clone(),
            submitter: TaskSubmitter::start(pool.clone()),
            reader: TaskReader::start(pool.clone()),
        });
        let max_body = config.max_body_bytes;
        let server = HttpServer::new(move || {
            App::new()
                .wrap(http_errors::json_error_bodies())
                .wrap(actix_web::middleware::from_fn(request_trace::trace_requests))
                .app_data(http_metrics.clone())
                .configure(|cfg| http::configure(cfg, state.clone(), max_body))
                .configure(|cfg| http::operations::configure(cfg, operations.clone()))
                .default_service(web::to(http_errors::route_not_found))
        })
        .workers(config.http_workers)
        .disable_signals()
        .shutdown_timeout(config.worker.shutdown_grace.as_secs().max(1))
        .listen(listener)
        .map_err(listen_error)?
        .run();
        tracing::info!(port, worker.id = %worker.id(), "dtp-engine listening");
        Ok(Self {
            port,
            server,
            pool,
            worker,
            rescuer,
            listener_url: db_url_for_listener,
            worker_enabled: config.worker_enabled,
            shutdown: CancellationToken::new(),
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

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Firing this token stops the server, the worker (gracefully) and the rescuer.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Serves HTTP and runs the worker and rescuer until the shutdown token fires.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let handle = self.server.handle();
        let mut server = tokio::spawn(self.server);
        let background = self.worker_enabled.then(|| {
            let listener = TaskEventListener::new(self.listener_url.clone(), self.worker.clone());
            (
                tokio::spawn(self.worker.clone().run(self.shutdown.clone())),
                tokio::spawn(self.rescuer.clone().run(self.shutdown.clone())),
                tokio::spawn(listener.run(self.shutdown.clone())),
            )
        });
        let served = tokio::select! {
            served = &mut server => served,
            () = self.shutdown.cancelled() => {
                tracing::info!("shutting down: no new requests or claims");
                handle.stop(true).await;
                server.await
            }
        };
        self.shutdown.cancel();
        if let Some((worker, rescuer, listener)) = background {
            let _ = worker.await;
            let _ = rescuer.await;
            let _ = listener.await;
        }
        tracing::info!("dtp-engine stopped");
        served.unwrap_or_else(|e| Err(std::io::Error::other(e)))
    }
}
