//! Engine settings, read once from the environment at start-up (`DTP_*`).

use service_http::http_errors::DEFAULT_MAX_BODY_BYTES;
use service_http::rate_limit::Quota;
use service_process::env_config::{self, in_range, ConfigError, SettingSource};

use crate::domain::lease::MAX_WAIT_MS;
use crate::domain::RetryPolicy;
use std::time::Duration;

use crate::worker::{cleaner, Retention, WorkerConfig};

pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@localhost:5432/dtp";
pub const DEFAULT_HTTP_ADDR: &str = "0.0.0.0:8080";
pub const DEFAULT_HTTP_WORKERS: usize = 2;

/// Requests (or batched tasks) per second one token may send to one engine: far above what
/// a well-behaved client needs, far below what would crowd out everyone else.
pub const DEFAULT_RATE_LIMIT_PER_SEC: u32 = 10_000;

#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub database_url: String,
    pub http_addr: String,
    /// actix worker threads serving HTTP.
    pub http_workers: usize,
    pub max_body_bytes: usize,
    /// Run the claim loop in this process (off for API-only nodes and stepped tests).
    pub worker_enabled: bool,
    pub worker: WorkerConfig,
    pub db_pool_size: usize,
    /// The operator's task types file (`DTP_TASK_TYPES_FILE`), read once at start-up.
    pub task_types_file: Option<String>,
    /// Register `demo`, `demo-slow` and `demo-fail` (`DTP_DEMO_TYPES`, default true).
    pub demo_types: bool,
    /// Whether callers must present a service token (`DTP_AUTH`, default on; `disabled` turns it off).
    pub auth_enabled: bool,
    /// The service tokens (`DTP_API_TOKENS_FILE`), required while `auth_enabled`.
    pub api_tokens_file: Option<String>,
    /// The longest a long-poll (a worker's lease request, a read of the feed) waits
    /// (`DTP_LEASE_MAX_WAIT_MS`, at most 30 s):
    /// below an idle timeout of a proxy in front of the engine.
    pub lease_max_wait_ms: i32,
    /// Origins whose pages may call the engine from a browser (`DTP_CORS_ORIGINS`); none by default.
    pub cors_origins: Vec<String>,
    /// The most client connections held open (`DTP_MAX_CONNECTIONS`), lowered to what the
    /// file-descriptor limit allows; a connection beyond it is answered 503.
    pub max_connections: usize,
    /// Bytes of large request bodies read at once (`DTP_BODY_BUDGET_BYTES`); others wait.
    pub body_budget_bytes: usize,
    /// Each service token's quota of requests (a batch counts its tasks), per process
    /// (`DTP_RATE_LIMIT_PER_SEC`, `DTP_RATE_LIMIT_BURST`).
    pub rate_limit: Quota,
    /// How long events and finished tasks are kept (`DTP_EVENT_RETENTION_HOURS`,
    /// `DTP_FINISHED_RETENTION_HOURS`, `DTP_CLEANUP_INTERVAL_MS`).
    pub retention: Retention,
}

impl EngineConfig {
    pub fn from_source(source: &dyn SettingSource) -> Result<Self, ConfigError> {
        let defaults = WorkerConfig::default();
        let concurrency = env_config::parsed(source, "DTP_WORKER_CONCURRENCY", defaults.concurrency, |n| {
            in_range(*n, 1, 10_000)
        })?;
        let base = env_config::millis(source, "DTP_RETRY_BACKOFF_BASE_MS", defaults.retry.base, 1)?;
        let max = env_config::millis(
            source,
            "DTP_RETRY_BACKOFF_MAX_MS",
            defaults.retry.max.max(base),
            1,
        )?;
        if max < base {
            return Err(ConfigError {
                name: "DTP_RETRY_BACKOFF_MAX_MS".into(),
                value: max.as_millis().to_string(),
                reason: format!(
                    "must not be below DTP_RETRY_BACKOFF_BASE_MS ({} ms)",
                    base.as_millis()
                ),
            });
        }
        let worker = WorkerConfig {
            concurrency,
            poll_interval: env_config::millis(source, "DTP_POLL_INTERVAL_MS", defaults.poll_interval, 1)?,
            lease: env_config::millis(source, "DTP_LEASE_MS", defaults.lease, 30)?,
            rescue_interval: env_config::millis(
                source,
                "DTP_RESCUE_INTERVAL_MS",
                defaults.rescue_interval,
                10,
            )?,
            retry: RetryPolicy { base, max },
            shutdown_grace: env_config::millis(source, "DTP_SHUTDOWN_GRACE_MS", defaults.shutdown_grace, 0)?,
        };
        let hours = |name: &str, default: Duration, min: usize| {
            env_config::parsed(source, name, default.as_secs() as usize / 3_600, |n| {
                in_range(*n, min, 100 * 365 * 24)
            })
            .map(|h| Duration::from_secs(h as u64 * 3_600))
        };
        let finished = hours(
            "DTP_FINISHED_RETENTION_HOURS",
            cleaner::DEFAULT_FINISHED_RETENTION,
            0,
        )?;
        let retention = Retention {
            events: hours("DTP_EVENT_RETENTION_HOURS", cleaner::DEFAULT_EVENT_RETENTION, 1)?,
            finished_tasks: (!finished.is_zero()).then_some(finished),
            interval: env_config::millis(
                source,
                "DTP_CLEANUP_INTERVAL_MS",
                cleaner::DEFAULT_CLEANUP_INTERVAL,
                100,
            )?,
        };
        Ok(Self {
            retention,
            database_url: env_config::string(source, "DTP_DATABASE_URL", DEFAULT_DATABASE_URL),
            http_addr: env_config::string(source, "DTP_HTTP_ADDR", DEFAULT_HTTP_ADDR),
            http_workers: env_config::parsed(source, "DTP_HTTP_WORKERS", DEFAULT_HTTP_WORKERS, |n| {
                in_range(*n, 1, 64)
            })?,
            max_body_bytes: env_config::parsed(source, "DTP_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES, |n| {
                in_range(*n, 1_024, 64 * 1024 * 1024)
            })?,
            worker_enabled: env_config::parsed(source, "DTP_WORKER_ENABLED", true, |_| Ok(()))?,
            db_pool_size: env_config::parsed(
                source,
                "DTP_DB_POOL_SIZE",
                concurrency.clamp(4, 16) + 4,
                |n| in_range(*n, 2, 1_000),
            )?,
            worker,
            task_types_file: source
                .get("DTP_TASK_TYPES_FILE")
                .filter(|path| !path.trim().is_empty()),
            demo_types: env_config::parsed(source, "DTP_DEMO_TYPES", true, |_| Ok(()))?,
            auth_enabled: match source.get("DTP_AUTH").as_deref() {
                None | Some("enabled") => true,
                Some("disabled") => false,
                Some(other) => {
                    return Err(ConfigError {
                        name: "DTP_AUTH".into(),
                        value: other.to_owned(),
                        reason: "must be \"enabled\" or \"disabled\"".into(),
                    })
                }
            },
            api_tokens_file: source.get("DTP_API_TOKENS_FILE"),
            cors_origins: service_http::cross_origin::origins(source, "DTP_CORS_ORIGINS")?,
            max_connections: env_config::parsed(
                source,
                "DTP_MAX_CONNECTIONS",
                service_http::connections::DEFAULT_MAX_CONNECTIONS,
                |n| in_range(*n, 1, 1_000_000),
            )?,
            body_budget_bytes: env_config::parsed(
                source,
                "DTP_BODY_BUDGET_BYTES",
                service_http::body_budget::DEFAULT_BODY_BUDGET_BYTES,
                |n| in_range(*n, 1024 * 1024, 64 * 1024 * 1024 * 1024),
            )?,
            rate_limit: service_http::rate_limit::quota(source, "DTP", DEFAULT_RATE_LIMIT_PER_SEC)?,
            lease_max_wait_ms: env_config::parsed(source, "DTP_LEASE_MAX_WAIT_MS", MAX_WAIT_MS, |n| {
                if (0..=MAX_WAIT_MS).contains(n) {
                    Ok(())
                } else {
                    Err(format!("must be between 0 and {MAX_WAIT_MS}"))
                }
            })?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use service_process::env_config::FixedSettings;
    use std::time::Duration;

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let empty = &FixedSettings(&[]);
        let config = EngineConfig::from_source(empty).unwrap();
        assert_eq!(config.database_url, DEFAULT_DATABASE_URL);
        assert_eq!(config.http_addr, DEFAULT_HTTP_ADDR);
        assert_eq!(config.worker.concurrency, 10);
        assert!(config.worker_enabled);
        assert_eq!(config.max_body_bytes, 1024 * 1024);
        assert_eq!(config.task_types_file, None);
        assert!(config.demo_types);
        assert_eq!(config.lease_max_wait_ms, 30_000);
        assert!(config.auth_enabled);
        assert_eq!(config.api_tokens_file, None);
    }

    #[test]
    fn reads_the_task_types_settings() {
        let source = &FixedSettings(&[
            ("DTP_TASK_TYPES_FILE", "/etc/dtp/types.toml"),
            ("DTP_DEMO_TYPES", "false"),
        ]);
        let config = EngineConfig::from_source(source).unwrap();
        assert_eq!(config.task_types_file.as_deref(), Some("/etc/dtp/types.toml"));
        assert!(!config.demo_types);
        let err = EngineConfig::from_source(&FixedSettings(&[("DTP_DEMO_TYPES", "nope")])).unwrap_err();
        assert_eq!(err.name, "DTP_DEMO_TYPES");
        let off = EngineConfig::from_source(&FixedSettings(&[("DTP_AUTH", "disabled")])).unwrap();
        assert!(!off.auth_enabled);
        let err = EngineConfig::from_source(&FixedSettings(&[("DTP_AUTH", "off")])).unwrap_err();
        assert_eq!(err.name, "DTP_AUTH");
    }

    #[test]
    fn reads_every_worker_setting() {
        let source = &FixedSettings(&[
            ("DTP_WORKER_CONCURRENCY", "3"),
            ("DTP_POLL_INTERVAL_MS", "20"),
            ("DTP_RETRY_BACKOFF_BASE_MS", "10"),
            ("DTP_RETRY_BACKOFF_MAX_MS", "40"),
            ("DTP_SHUTDOWN_GRACE_MS", "0"),
            ("DTP_LEASE_MS", "900"),
        ]);
        let config = EngineConfig::from_source(source).unwrap();
        assert_eq!(config.worker.concurrency, 3);
        assert_eq!(config.worker.poll_interval, Duration::from_millis(20));
        assert_eq!(config.worker.retry.base, Duration::from_millis(10));
        assert_eq!(config.worker.retry.max, Duration::from_millis(40));
        assert_eq!(config.worker.shutdown_grace, Duration::ZERO);
        assert_eq!(config.worker.lease, Duration::from_millis(900));
    }

    #[test]
    fn rejects_unusable_values_naming_the_variable() {
        for (name, value) in [
            ("DTP_WORKER_CONCURRENCY", "0"),
            ("DTP_WORKER_CONCURRENCY", "lots"),
            ("DTP_POLL_INTERVAL_MS", "-5"),
            ("DTP_RETRY_BACKOFF_MAX_MS", "0"),
            ("DTP_MAX_BODY_BYTES", "10"),
        ] {
            let source = &FixedSettings(&[(name, value)]);
            let err = EngineConfig::from_source(source).unwrap_err();
            assert_eq!(err.name, name);
        }
        let source = &FixedSettings(&[
            ("DTP_RETRY_BACKOFF_BASE_MS", "500"),
            ("DTP_RETRY_BACKOFF_MAX_MS", "100"),
        ]);
        assert!(EngineConfig::from_source(source).is_err());
    }
}
