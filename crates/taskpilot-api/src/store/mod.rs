//! Every SQL statement of TaskPilot, one module per table (`web_tasks`, `api_keys`, the
//! execution mirror in `task_executions`), and the dashboard's aggregates over them (`overview`).
//! The statements are synchronous functions of a connection; web tasks are reached through
//! their handle (`web_tasks::WebTasks`), the other tables' statements on the pool through
//! `store::run`.

pub(crate) mod api_keys;
pub(crate) mod overview;
pub(crate) mod schema;
pub mod task_executions;
pub(crate) mod web_tasks;

pub use service_postgres::database::{run, StoreError};
pub use service_postgres::PgPool;
