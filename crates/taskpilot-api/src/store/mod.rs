//! Every SQL statement of TaskPilot (one table: `web_tasks`). Functions are synchronous
//! and take a connection; callers run them on the pool through `store::run`.

pub mod schema;
pub mod web_tasks;

pub use service_runtime::database::{run, StoreError};
pub use service_runtime::PgPool;
