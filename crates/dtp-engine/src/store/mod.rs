//! Every SQL statement of the engine, one module per table. Functions are synchronous
//! and take a connection; callers run them on the pool through `store::run`.

pub mod attempts;
pub mod schema;
pub mod task_stats;
pub mod tasks;

use diesel::PgConnection;
pub use service_runtime::{DbError, PgPool};

/// Why the store could not answer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("query failed: {0}")]
    Query(#[source] diesel::result::Error),
    /// A row holds a value the code does not know (the CHECK constraints should prevent it).
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

impl From<diesel::result::Error> for StoreError {
    fn from(err: diesel::result::Error) -> Self {
        DbError::from(err).into()
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
