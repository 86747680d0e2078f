//! Test support. Throwaway databases: each test gets a uniquely named database on the
//! server at `TEST_DATABASE_URL`, dropped (with its connections) when the guard drops.
//! `api_spec`: checks of a served OpenAPI description against the served routes; `doubles`:
//! numbers for payload round-trip tests.

pub mod api_spec;
pub mod doubles;
pub mod tls_cluster;

use diesel::prelude::*;
use rand::Rng;

use crate::database::{build_pool, ensure_database, quote_ident, DatabaseUrl, Pool};

/// Where test databases are created when `TEST_DATABASE_URL` is unset.
pub const DEFAULT_TEST_SERVER_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A database name reserved for one test; the service under test creates and migrates it.
pub struct TestDatabase {
    server: DatabaseUrl,
    name: String,
}

impl TestDatabase {
    /// Reserves a fresh, unique database name with the given prefix (e.g. `dtp`).
    pub fn new(prefix: &str) -> Self {
        let raw = std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_TEST_SERVER_URL.to_owned());
        let server = DatabaseUrl::parse(&raw).unwrap_or_else(|e| panic!("TEST_DATABASE_URL: {e}"));
        let suffix: u64 = rand::rng().random();
        let name = format!("test_{prefix}_{}_{suffix:016x}", std::process::id());
        Self { server, name }
    }

    /// URL of this test's database.
    pub fn url(&self) -> String {
        self.server.with_database(&self.name)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// A direct connection, for assertions that read tables behind the service's back.
    pub fn connect(&self) -> PgConnection {
        PgConnection::establish(&self.url()).unwrap_or_else(|e| panic!("connect to {}: {e}", self.name))
    }

    /// Creates this database, empty, unless it exists; returns its URL.
    pub fn create(&self) -> DatabaseUrl {
        let url = DatabaseUrl::parse(&self.url()).unwrap_or_else(|e| panic!("{}: {e}", self.name));
        ensure_database(&url).unwrap_or_else(|e| panic!("create {}: {e}", self.name));
        url
    }

    /// Creates this database (empty) and a pool of up to `max_connections` on it.
    pub fn pool(&self, max_connections: usize) -> Pool {
        build_pool(&self.create(), max_connections).unwrap_or_else(|e| panic!("pool on {}: {e}", self.name))
    }

    /// Ends every open connection to this database, as a Postgres restart would, and
    /// accepts new ones at once.
    pub fn end_connections(&self) {
        self.refuse_connections();
        self.accept_connections();
    }

    /// Simulates an outage of this database alone: refuses new connections and ends the
    /// open ones, as a Postgres restart would, without disturbing other tests' databases.
    pub fn refuse_connections(&self) {
        self.on_server(&format!(
            "ALTER DATABASE {} ALLOW_CONNECTIONS false",
            quote_ident(&self.name)
        ));
        self.on_server(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = {}",
            crate::database::quote_literal(&self.name)
        ));
    }

    /// Ends the outage begun by `refuse_connections`.
    pub fn accept_connections(&self) {
        self.on_server(&format!(
            "ALTER DATABASE {} ALLOW_CONNECTIONS true",
            quote_ident(&self.name)
        ));
    }

    fn on_server(&self, sql: &str) {
        let mut conn = PgConnection::establish(&self.server.maintenance_url())
            .unwrap_or_else(|e| panic!("connect to the test server: {e}"));
        diesel::sql_query(sql)
            .execute(&mut conn)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Err(e) = crate::database::drop_database(&self.server, &self.name) {
            eprintln!("could not drop test database {}: {e}", self.name);
        }
    }
}
