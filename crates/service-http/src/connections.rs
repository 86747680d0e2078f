//! Every client connection, watched: a cap on how many a process holds open (beyond it, a
//! new connection's request is answered `503 SERVER_BUSY` and the connection closed, rather
//! than left to hang in the accept queue), a deadline for each request head on a kept-alive
//! connection (the HTTP server applies its own only to a connection's first request), and a
//! second handle on the socket through which a long-waiting handler can see its client leave.

use std::any::Any;
use std::io::ErrorKind;
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Extensions, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderValue, RETRY_AFTER};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::http_errors::json_error;

/// How long a connection may sit with no request in progress: the server's keep-alive (5 s,
/// after which it closes an idle connection itself) plus its head deadline (5 s). Only a
/// connection that has begun a request head and not finished it lives that long.
pub const IDLE_LIMIT: Duration = Duration::from_secs(10);
/// How often each connection's watch looks.
const WATCH_EVERY: Duration = Duration::from_secs(1);
/// File descriptors kept for everything but client connections (the pool, LISTEN, files).
const RESERVED_DESCRIPTORS: u64 = 128;
/// The most connections held open when the descriptor limit allows more.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

/// The cap on open connections that the process's file-descriptor limit allows: each
/// connection takes two descriptors (the server's and the watch's). The soft limit is raised
/// to the hard one first.
pub fn affordable_connections(wanted: usize) -> usize {
    let descriptors = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(1_024);
    let affordable = descriptors.saturating_sub(RESERVED_DESCRIPTORS) / 2;
    wanted
        .min(usize::try_from(affordable).unwrap_or(usize::MAX))
        .max(1)
}

/// The connections a process holds open, shared by its HTTP workers.
#[derive(Debug, Clone)]
pub struct ConnectionLimit {
    open: Arc<AtomicUsize>,
    cap: usize,
}

impl ConnectionLimit {
    /// The limit for a process that wants `wanted` connections at most, lowered (with a
    /// warning) to what its file-descriptor limit allows.
    pub fn within_descriptors(wanted: usize) -> Self {
        let cap = affordable_connections(wanted);
        if cap < wanted {
            tracing::warn!(wanted, cap, "the file-descriptor limit lowers the connection cap");
        }
        Self::new(cap)
    }

    pub fn new(cap: usize) -> Self {
        Self {
            open: Arc::default(),
            cap,
        }
    }

    /// Connections open right now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// For `HttpServer::on_connect`: counts the connection, keeps a second handle on its
    /// socket, and starts its watch (which ends with the connection).
    pub fn on_connect(&self, connection: &dyn Any, data: &mut Extensions) {
        let open = self.open.fetch_add(1, Ordering::Relaxed) + 1;
        data.insert(Counted(Arc::clone(&self.open)));
        if open > self.cap {
            data.insert(OverCapacity);
        }
        let Some(socket) = second_handle(connection) else {
            return;
        };
        let socket = Arc::new(socket);
        let activity = Arc::new(Activity::new());
        let ended = CancellationToken::new();
        actix_web::rt::spawn(watch(Arc::clone(&socket), Arc::clone(&activity), ended.clone()));
        data.insert(ClientSocket(socket));
        data.insert(activity);
        data.insert(Ended {
            _watch: ended.drop_guard(),
        });
    }
}

/// Ends the connection's watch when the server drops the connection's data.
struct Ended {
    _watch: DropGuard,
}

/// Decrements the count of open connections when the connection's data is dropped.
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Marks a connection accepted beyond the cap.
struct OverCapacity;

/// Whether a request is in progress on a connection, and since when none has been.
struct Activity {
    started: Instant,
    in_progress: AtomicUsize,
    idle_since_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            started: Instant::now(),
            in_progress: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn begin(&self) {
        self.in_progress.fetch_add(1, Ordering::SeqCst);
    }

    fn end(&self) {
        self.idle_since_ms.store(self.now_ms(), Ordering::SeqCst);
        self.in_progress.fetch_sub(1, Ordering::SeqCst);
    }

    /// Idle for longer than `IDLE_LIMIT`: a request head has been arriving for too long.
    fn overdue(&self) -> bool {
        self.in_progress.load(Ordering::SeqCst) == 0
            && self
                .now_ms()
                .saturating_sub(self.idle_since_ms.load(Ordering::SeqCst))
                > millis(IDLE_LIMIT)
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

async fn watch(socket: Arc<TcpStream>, activity: Arc<Activity>, ended: CancellationToken) {
    let mut ticks = tokio::time::interval(WATCH_EVERY);
    loop {
        tokio::select! {
            () = ended.cancelled() => return,
            _ = ticks.tick() => {}
        }
        if activity.overdue() {
            tracing::info!(
                idle_limit_s = IDLE_LIMIT.as_secs(),
                "closing a connection whose request head never completed"
            );
            // Both handles share the socket: the server's read sees the end and drops it.
            let _ = socket.shutdown(Shutdown::Both);
            return;
        }
    }
}

fn second_handle(connection: &dyn Any) -> Option<TcpStream> {
    #[cfg(unix)]
    if let Some(stream) = connection.downcast_ref::<actix_web::rt::net::TcpStream>() {
        use std::os::fd::AsFd;
        return stream.as_fd().try_clone_to_owned().ok().map(TcpStream::from);
    }
    let _ = connection;
    None
}

/// A second handle on a connection's socket (the same socket, non-blocking as the server's).
#[derive(Clone)]
pub struct ClientSocket(Arc<TcpStream>);

impl ClientSocket {
    /// `false` once the client has closed the connection (or it failed); `true` while it is
    /// open, with or without bytes waiting to be read.
    pub fn is_open(&self) -> bool {
        let mut byte = [0u8; 1];
        match self.0.peek(&mut byte) {
            Ok(0) => false,
            Ok(_) => true,
            Err(e) => e.kind() == ErrorKind::WouldBlock,
        }
    }
}

/// Middleware: a request on a connection beyond the cap is answered `503 SERVER_BUSY` (with
/// `Retry-After` and the connection closed); any other is marked in progress on its
/// connection while it runs, so that the connection's watch leaves it be.
pub async fn watch_requests(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    if req.conn_data::<OverCapacity>().is_some() {
        let mut busy = json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "SERVER_BUSY",
            "too many open connections; try again shortly",
        );
        busy.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("1"));
        busy.head_mut()
            .set_connection_type(actix_web::http::ConnectionType::Close);
        return Ok(req.into_response(busy));
    }
    let activity = req.conn_data::<Arc<Activity>>().cloned();
    let _in_progress = activity.map(InProgress::begin);
    Ok(next.call(req).await?.map_into_boxed_body())
}

/// A request in progress on its connection, until dropped.
struct InProgress(Arc<Activity>);

impl InProgress {
    fn begin(activity: Arc<Activity>) -> Self {
        activity.begin();
        Self(activity)
    }
}

impl Drop for InProgress {
    fn drop(&mut self) {
        self.0.end();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_is_overdue_only_when_idle_past_the_limit() {
        let activity = Activity::new();
        assert!(!activity.overdue(), "just connected");
        activity.idle_since_ms.store(0, Ordering::SeqCst);
        let long_ago = Activity {
            started: Instant::now() - IDLE_LIMIT - Duration::from_secs(1),
            ..Activity::new()
        };
        assert!(long_ago.overdue(), "idle past the limit");
        long_ago.begin();
        assert!(!long_ago.overdue(), "a request in progress may take its time");
        long_ago.end();
        assert!(!long_ago.overdue(), "a request just ended");
    }

    #[test]
    fn the_cap_fits_the_descriptor_limit() {
        let cap = affordable_connections(usize::MAX);
        let (soft, _) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap();
        assert_eq!(cap as u64, (soft - RESERVED_DESCRIPTORS) / 2);
        assert_eq!(affordable_connections(5), 5);
    }
}
