//! TaskPilot settings, read once from the environment at start-up (`TASKPILOT_*`).

use std::time::Duration;

use service_http::http_errors::DEFAULT_MAX_BODY_BYTES;
use service_http::rate_limit::Quota;
use service_process::env_config::{self, in_range, ConfigError, SettingSource};

pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@localhost:5432/webdb";
pub const DEFAULT_HTTP_ADDR: &str = "0.0.0.0:8081";
pub const DEFAULT_SCHEDULER_URL: &str = "http://localhost:8080";
pub const DEFAULT_SCHEDULER_TIMEOUT: Duration = Duration::from_secs(5);
pub const DEFAULT_HTTP_WORKERS: usize = 2;
pub const DEFAULT_DB_POOL_SIZE: usize = 16;
/// Requests per second one key may send to one TaskPilot process.
pub const DEFAULT_RATE_LIMIT_PER_SEC: u32 = 1_000;

#[derive(Debug, Clone)]
pub struct TaskPilotConfig {
    pub database_url: String,
    pub http_addr: String,
    pub scheduler_url: String,
    pub scheduler_timeout: Duration,
    /// The service token TaskPilot presents to DTP (`TASKPILOT_SCHEDULER_TOKEN`).
    pub scheduler_token: Option<String>,
    pub http_workers: usize,
    pub max_body_bytes: usize,
    /// The largest request body DTP takes (`TASKPILOT_SCHEDULER_MAX_BODY_BYTES`, its
    /// `DTP_MAX_BODY_BYTES`): creates whose payload could not be submitted are refused.
    pub scheduler_max_body_bytes: usize,
    pub db_pool_size: usize,
    /// Whether callers must present an API key (`TASKPILOT_AUTH`, default on; `disabled`
    /// makes every request tenant `default` with every scope).
    pub auth_enabled: bool,
    /// `/metrics`, `/openapi.json` and `/docs` without a key (`TASKPILOT_PUBLIC_OPS=true`).
    pub public_ops: bool,
    /// Origins whose pages may call TaskPilot from a browser (`TASKPILOT_CORS_ORIGINS`); none by default.
    pub cors_origins: Vec<String>,
    /// The most client connections held open (`TASKPILOT_MAX_CONNECTIONS`), lowered to what the
    /// file-descriptor limit allows; a connection beyond it is answered 503.
    pub max_connections: usize,
    /// Bytes of large request bodies read at once (`TASKPILOT_BODY_BUDGET_BYTES`); others wait.
    pub body_budget_bytes: usize,
    /// Each key's quota of requests, per process (`TASKPILOT_RATE_LIMIT_PER_SEC`, `_BURST`).
    pub rate_limit: Quota,
    /// Fault point for crash tests: exit between the scheduler's answer to a bind and our
    /// commit. Off unless `TASKPILOT_FAULT_EXIT_AFTER_SCHEDULER_CREATE=true`.
    pub crash_after_scheduler_create: bool,
    /// Whether this process follows the scheduler's change feed to keep the execution mirror
    /// (`TASKPILOT_EXECUTION_MIRROR`, default on; one process follows at a time).
    pub execution_mirror: bool,
    /// How long the follower keeps the events it applied, for the event streams
    /// (`TASKPILOT_EVENT_RETENTION_HOURS`, default 168); the mirrored state is kept.
    pub event_retention: Duration,
}

impl TaskPilotConfig {
    pub fn from_source(source: &dyn SettingSource) -> Result<Self, ConfigError> {
        let scheduler_url = env_config::string(source, "TASKPILOT_SCHEDULER_URL", DEFAULT_SCHEDULER_URL);
        if !(scheduler_url.starts_with("http://") || scheduler_url.starts_with("https://")) {
            return Err(ConfigError {
                name: "TASKPILOT_SCHEDULER_URL".into(),
                value: scheduler_url,
                reason: "must start with http:// or https://".into(),
            });
        }
        Ok(Self {
            database_url: env_config::string(source, "TASKPILOT_DATABASE_URL", DEFAULT_DATABASE_URL),
            http_addr: env_config::string(source, "TASKPILOT_HTTP_ADDR", DEFAULT_HTTP_ADDR),
            scheduler_url,
            scheduler_timeout: env_config::millis(
                source,
                "TASKPILOT_SCHEDULER_TIMEOUT_MS",
                DEFAULT_SCHEDULER_TIMEOUT,
                1,
            )?,
            scheduler_token: source.get("TASKPILOT_SCHEDULER_TOKEN"),
            auth_enabled: match source.get("TASKPILOT_AUTH").as_deref() {
                None | Some("enabled") => true,
                Some("disabled") => false,
                Some(other) => {
                    return Err(ConfigError {
                        name: "TASKPILOT_AUTH".into(),
                        value: other.to_owned(),
                        reason: "must be \"enabled\" or \"disabled\"".into(),
                    })
                }
            },
            public_ops: env_config::parsed(source, "TASKPILOT_PUBLIC_OPS", false, |_| Ok(()))?,
            execution_mirror: env_config::parsed(source, "TASKPILOT_EXECUTION_MIRROR", true, |_| Ok(()))?,
            event_retention: env_config::parsed(source, "TASKPILOT_EVENT_RETENTION_HOURS", 168, |n| {
                in_range(*n, 1, 100 * 365 * 24)
            })
            .map(|hours: usize| Duration::from_secs(hours as u64 * 3_600))?,
            cors_origins: service_http::cross_origin::origins(source, "TASKPILOT_CORS_ORIGINS")?,
            max_connections: env_config::parsed(
                source,
                "TASKPILOT_MAX_CONNECTIONS",
                service_http::connections::DEFAULT_MAX_CONNECTIONS,
                |n| in_range(*n, 1, 1_000_000),
            )?,
            body_budget_bytes: env_config::parsed(
                source,
                "TASKPILOT_BODY_BUDGET_BYTES",
                service_http::body_budget::DEFAULT_BODY_BUDGET_BYTES,
                |n| in_range(*n, 1024 * 1024, 64 * 1024 * 1024 * 1024),
            )?,
            rate_limit: service_http::rate_limit::quota(source, "TASKPILOT", DEFAULT_RATE_LIMIT_PER_SEC)?,
            http_workers: env_config::parsed(source, "TASKPILOT_HTTP_WORKERS", DEFAULT_HTTP_WORKERS, |n| {
                in_range(*n, 1, 64)
            })?,
            max_body_bytes: env_config::parsed(
                source,
                "TASKPILOT_MAX_BODY_BYTES",
                DEFAULT_MAX_BODY_BYTES,
                |n| in_range(*n, 1_024, 64 * 1024 * 1024),
            )?,
            scheduler_max_body_bytes: env_config::parsed(
                source,
                "TASKPILOT_SCHEDULER_MAX_BODY_BYTES",
                DEFAULT_MAX_BODY_BYTES,
                |n| in_range(*n, 4_096, 64 * 1024 * 1024),
            )?,
            db_pool_size: env_config::parsed(source, "TASKPILOT_DB_POOL_SIZE", DEFAULT_DB_POOL_SIZE, |n| {
                in_range(*n, 2, 1_000)
            })?,
            crash_after_scheduler_create: env_config::parsed(
                source,
                "TASKPILOT_FAULT_EXIT_AFTER_SCHEDULER_CREATE",
                false,
                |_| Ok(()),
            )?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use service_process::env_config::FixedSettings;

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let config = TaskPilotConfig::from_source(&FixedSettings(&[])).unwrap();
        assert_eq!(config.database_url, DEFAULT_DATABASE_URL);
        assert_eq!(config.http_addr, DEFAULT_HTTP_ADDR);
        assert_eq!(config.scheduler_url, DEFAULT_SCHEDULER_URL);
        assert_eq!(config.scheduler_timeout, DEFAULT_SCHEDULER_TIMEOUT);
        assert!(!config.crash_after_scheduler_create);
    }

    #[test]
    fn reads_and_checks_settings() {
        let config = TaskPilotConfig::from_source(&FixedSettings(&[
            ("TASKPILOT_SCHEDULER_URL", "http://dtp:8080"),
            ("TASKPILOT_SCHEDULER_TIMEOUT_MS", "250"),
        ]))
        .unwrap();
        assert_eq!(config.scheduler_url, "http://dtp:8080");
        assert_eq!(config.scheduler_timeout, Duration::from_millis(250));
        for (name, value) in [
            ("TASKPILOT_SCHEDULER_URL", "dtp:8080"),
            ("TASKPILOT_SCHEDULER_TIMEOUT_MS", "0"),
            ("TASKPILOT_MAX_BODY_BYTES", "x"),
        ] {
            let err = TaskPilotConfig::from_source(&FixedSettings(&[(name, value)])).unwrap_err();
            assert_eq!(err.name, name);
        }
    }
}
