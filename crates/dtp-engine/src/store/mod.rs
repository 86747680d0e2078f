//! Every SQL statement of the engine, one module per table. The statements are synchronous
//! functions of a connection; the engine calls the `tasks` table through its handle
//! (`tasks::Tasks`), the smaller tables' statements on the pool through `store::run`.

pub mod attempts;
mod names;
pub mod schema;
pub mod task_events;
pub mod task_stats;
pub mod tasks;

pub use service_postgres::database::{run, StoreError};
pub use service_postgres::PgPool;
