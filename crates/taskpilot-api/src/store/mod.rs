//! Every SQL statement of TaskPilot (one table: `web_tasks`). Functions are synchronous
//! and take a connection; callers run them on the pool through `store::run`.

pub mod schema;
pub mod web_tasks;

use diesel::PgConnection;
pub use service_runtime::{DbError, PgPool};

/// Why the store could not answer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("query failed: {0}")]
    Query(#[source] diesel::result::Error),
    #[error("corrupt row: {0}")]
    CorruptRow(String),
}

impl From<DbError> for StoreError {
    fn from(err: DbError) -> Self {
        match err {
            DbError::Unavailable(reason) => StoreError::Unavailable(reason),
            DbError::Query(e) => StoreError::Query(e),
        }
    }
}

/// Runs store functions on a pooled connection.
pub async fn run<T, F>(pool: &PgPool, query: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce(&mut PgConnection) -> diesel::QueryResult<T> + Send + 'static,
{
    Ok(service_runtime::interact(pool, query).await?)
}
