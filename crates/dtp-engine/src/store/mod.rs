//! Every SQL statement of the engine, one module per table. Functions are synchronous
//! and take a connection; callers run them on the pool through `store::run`.

pub mod attempts;
pub mod schema;
pub mod task_events;
pub mod task_stats;
pub mod tasks;

pub use service_runtime::database::{run, StoreError};
pub use service_runtime::PgPool;
