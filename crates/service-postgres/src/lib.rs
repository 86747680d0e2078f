//! A service's own Postgres database: `database` brings it up at start-up (create when
//! missing, migrate under an advisory lock, pool) and runs queries on it with one error type;
//! `group_commit` lets requests arriving together share a statement; `prepared` keeps raw
//! statements prepared; `dedicated_connection` holds a connection out of the pool for one
//! caller; `notifications` follows a LISTEN channel; `postgres_tls` reads libpq's TLS modes;
//! `readiness` checks the database for `/readyz`.
//! With the `testing` feature, `testing` makes throwaway databases.

pub mod database;
pub mod dedicated_connection;
pub mod group_commit;
pub mod notifications;
pub mod postgres_tls;
pub mod prepared;
pub mod readiness;
#[cfg(feature = "testing")]
pub mod testing;

pub use database::{run, DatabaseUrl, PgPool, StoreError};
