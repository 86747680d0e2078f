//! The HTTP server both services run: the middleware stack in its one order (cross-origin
//! outermost, so that a preflight is answered before authentication it cannot carry; then
//! the connection watch, tracing, JSON error bodies, the request guard, and the service's
//! own identification innermost), the connection and body limits, and the stop that drains
//! in-flight requests.

use std::future::Future;
use std::net::TcpListener;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Server, ServiceRequest, ServiceResponse};
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, App, HttpServer};
use tokio_util::sync::CancellationToken;

use crate::body_budget::BodyBudget;
use crate::connections::{self, ConnectionLimit};
use crate::metrics::HttpMetrics;
use crate::rate_limit::RateLimiter;
use crate::{cross_origin, http_errors, request_trace};

/// Why a server could not listen on its address.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}: {source}")]
pub struct ListenError {
    pub addr: String,
    #[source]
    pub source: std::io::Error,
}

/// A socket bound to the service's address, not yet served.
pub struct Bound {
    listener: TcpListener,
    addr: String,
    port: u16,
}

impl Bound {
    /// The port bound (the one the system chose for `:0`).
    pub fn port(&self) -> u16 {
        self.port
    }
}

/// Binds `addr` (`host:port`).
pub fn bind(addr: &str) -> Result<Bound, ListenError> {
    let failed = |source| ListenError {
        addr: addr.to_owned(),
        source,
    };
    let listener = TcpListener::bind(addr).map_err(failed)?;
    let port = listener.local_addr().map_err(failed)?.port();
    Ok(Bound {
        listener,
        addr: addr.to_owned(),
        port,
    })
}

/// What bounds a server, from the service's settings.
pub struct ServerLimits {
    /// HTTP worker threads.
    pub workers: usize,
    /// Seconds a stop waits for in-flight requests.
    pub shutdown_timeout_secs: u64,
    /// Open connections at most (lowered to fit the descriptor limit).
    pub max_connections: usize,
    /// The largest request body.
    pub max_body_bytes: usize,
    /// Bytes of large bodies held at once across all requests.
    pub body_budget_bytes: usize,
    /// Origins a browser may call from.
    pub cors_origins: Vec<String>,
}

/// Starts serving on `bound`: `identify` tells who is calling (the service's own
/// middleware), `routes` registers the service's routes and their data; quotas are charged
/// to `rate_limiter`, requests counted in `metrics`. Signals are the service's to handle.
pub fn start<Identify, Identified, IdentifiedBody, Routes>(
    bound: Bound,
    limits: ServerLimits,
    rate_limiter: RateLimiter,
    metrics: web::Data<HttpMetrics>,
    identify: Identify,
    routes: Routes,
) -> Result<Server, ListenError>
where
    Identify: Fn(ServiceRequest, Next<BoxBody>) -> Identified + Clone + Send + 'static,
    Identified: Future<Output = Result<ServiceResponse<IdentifiedBody>, actix_web::Error>> + 'static,
    IdentifiedBody: MessageBody + 'static,
    Routes: Fn(&mut web::ServiceConfig) + Clone + Send + 'static,
{
    let cors_origins = web::Data::new(cross_origin::AllowedOrigins::new(&limits.cors_origins));
    let connection_limit = ConnectionLimit::within_descriptors(limits.max_connections);
    let body_budget = web::Data::new(BodyBudget::new(limits.body_budget_bytes, limits.max_body_bytes));
    let rate_limiter = web::Data::new(rate_limiter);
    let Bound { listener, addr, .. } = bound;
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(body_budget.clone())
            .app_data(rate_limiter.clone())
            .wrap(from_fn(identify.clone()))
            .wrap(from_fn(http_errors::guard_requests))
            .wrap(http_errors::json_error_bodies())
            .wrap(from_fn(request_trace::trace_requests))
            .app_data(metrics.clone())
            .configure(routes.clone())
            .default_service(web::to(http_errors::route_not_found))
            .wrap(from_fn(connections::watch_requests))
            .app_data(cors_origins.clone())
            .wrap(from_fn(cross_origin::cross_origin))
    })
    .on_connect(move |connection, data| connection_limit.on_connect(connection, data))
    .workers(limits.workers)
    .disable_signals()
    .shutdown_timeout(limits.shutdown_timeout_secs)
    .listen(listener)
    .map_err(|source| ListenError { addr, source })?
    .run())
}

/// Serves until `server` ends or `shutdown` fires; then stops taking requests and drains
/// the ones in flight.
pub async fn serve_until_stopped(server: Server, shutdown: &CancellationToken) -> std::io::Result<()> {
    let handle = server.handle();
    let mut serving = tokio::spawn(server);
    let served = tokio::select! {
        served = &mut serving => served,
        () = shutdown.cancelled() => {
            tracing::info!("shutting down: no new requests");
            handle.stop(true).await;
            serving.await
        }
    };
    served.unwrap_or_else(|e| Err(std::io::Error::other(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_in_use_is_one_error_naming_it() {
        let taken = bind("127.0.0.1:0").unwrap();
        let addr = format!("127.0.0.1:{}", taken.port());
        let err = bind(&addr).err().expect("the port is taken");
        assert_eq!(err.addr, addr);
        assert!(
            err.to_string().starts_with(&format!("cannot listen on {addr}: ")),
            "{err}"
        );
        assert_eq!(err.source.kind(), std::io::ErrorKind::AddrInUse);
    }
}
