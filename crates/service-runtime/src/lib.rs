//! Runtime plumbing shared by the platform's services (the DTP engine and TaskPilot):
//! bringing up the service's own Postgres database, JSON error bodies for everything
//! actix answers by itself, telemetry set-up, typed reading of environment settings, the
//! one line a binary prints when it stops on an error, and its `healthcheck` command.

pub mod api_docs;
pub mod body_budget;
pub mod connections;
pub mod cross_origin;
pub mod database;
pub mod dedicated_connection;
pub mod deployment_secrets;
pub mod env_config;
pub mod error_line;
pub mod group_commit;
pub mod healthcheck;
pub mod http_errors;
pub mod metrics;
pub mod notifications;
pub mod openapi;
pub mod page_cursor;
pub mod postgres_tls;
pub mod prepared;
pub mod rate_limit;
pub mod request_trace;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
pub mod trace_context;

pub use database::{interact, DatabaseUrl, DbError, PgPool};
