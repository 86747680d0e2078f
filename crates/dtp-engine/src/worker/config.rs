//! Worker settings and their defaults.

use std::time::Duration;

use crate::domain::RetryPolicy;

pub const DEFAULT_CONCURRENCY: usize = 10;
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(250);
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);
pub const DEFAULT_RESCUE_INTERVAL: Duration = Duration::from_secs(5);
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Attempts run at once by this process (0 disables the worker).
    pub concurrency: usize,
    /// Fallback wake-up when no notification arrives.
    pub poll_interval: Duration,
    /// How long a claim holds a task without a heartbeat.
    pub lease: Duration,
    /// How often the rescuer looks for expired leases.
    pub rescue_interval: Duration,
    pub retry: RetryPolicy,
    /// How long shutdown waits for running attempts before releasing them.
    pub shutdown_grace: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            concurrency: DEFAULT_CONCURRENCY,
            poll_interval: DEFAULT_POLL_INTERVAL,
            lease: DEFAULT_LEASE,
            rescue_interval: DEFAULT_RESCUE_INTERVAL,
            retry: RetryPolicy::default(),
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
        }
    }
}
