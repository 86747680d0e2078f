//! Test support. Throwaway databases: each test gets a uniquely named database on the
//! server at `TEST_DATABASE_URL`, dropped (with its connections) when the guard drops;
//! `migrated` copies it from a template migrated once per test process, and the first one
//! sweeps the databases that crashed test processes left behind. `tls_cluster`: a private
//! Postgres that speaks TLS only.

pub mod tls_cluster;

use std::collections::HashMap;
use std::sync::{Mutex, Once};

use diesel::prelude::*;
use diesel_migrations::EmbeddedMigrations;
use rand::Rng;

use crate::database::{build_pool, ensure_database, quote_ident, run_migrations, DatabaseUrl, Pool};

/// Every test database's name starts so; `sweep_abandoned` parses the rest.
const NAME_PREFIX: &str = "test_";

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
        let suffix: u64 = rand::rng().random();
        Self {
            server: test_server(),
            name: database_name(prefix, &format!("{suffix:016x}")),
        }
    }

    /// A fresh database with every one of `migrations` applied, copied from a template this
    /// process migrated once per `prefix`: a copy costs a fraction of a migration run.
    /// The service under test finds nothing left to apply.
    pub fn migrated(prefix: &str, migrations: EmbeddedMigrations) -> Self {
        let template = template_for(prefix, migrations);
        let db = Self::new(prefix);
        db.on_server(&format!(
            "CREATE DATABASE {} TEMPLATE {}",
            quote_ident(&db.name),
            quote_ident(&template)
        ));
        db
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

/// The server at `TEST_DATABASE_URL`, or the default one.
fn test_server() -> DatabaseUrl {
    let raw = std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_TEST_SERVER_URL.to_owned());
    DatabaseUrl::parse(&raw).unwrap_or_else(|e| panic!("TEST_DATABASE_URL: {e}"))
}

/// `test_<prefix>_<pid>_<suffix>`: the process id tells `sweep_abandoned` whose it is.
fn database_name(prefix: &str, suffix: &str) -> String {
    format!("{NAME_PREFIX}{prefix}_{}_{suffix}", std::process::id())
}

/// The name of this process's migrated template for `prefix`, made on first use. Templates
/// live as long as the process; the next run's sweep drops them.
fn template_for(prefix: &str, migrations: EmbeddedMigrations) -> String {
    static TEMPLATES: Mutex<Option<HashMap<String, String>>> = Mutex::new(None);
    static SWEEP: Once = Once::new();
    SWEEP.call_once(sweep_abandoned);
    // Held while migrating, so that concurrent tests wait for one template instead of racing.
    let mut templates = TEMPLATES.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let templates = templates.get_or_insert_with(HashMap::new);
    if let Some(name) = templates.get(prefix) {
        return name.clone();
    }
    let server = test_server();
    let name = database_name(prefix, "template");
    let url = DatabaseUrl::parse(&server.with_database(&name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    ensure_database(&url).unwrap_or_else(|e| panic!("create {name}: {e}"));
    run_migrations(&url, migrations).unwrap_or_else(|e| panic!("migrate {name}: {e}"));
    templates.insert(prefix.to_owned(), name.clone());
    name
}

/// Drops the test databases of processes that are gone (a crashed or killed run never
/// dropped its own) and that nobody is connected to. Process ids are this machine's, so
/// the sweep runs only where `/proc` tells which are alive.
fn sweep_abandoned() {
    if !std::path::Path::new("/proc/self").exists() {
        return;
    }
    #[derive(QueryableByName)]
    struct Name {
        #[diesel(sql_type = diesel::sql_types::Text)]
        datname: String,
    }
    let server = test_server();
    let Ok(mut conn) = PgConnection::establish(&server.maintenance_url()) else {
        return;
    };
    let idle: Vec<Name> = diesel::sql_query(
        "SELECT datname FROM pg_database d WHERE datname LIKE 'test\\_%' \
         AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.datname = d.datname)",
    )
    .load(&mut conn)
    .unwrap_or_default();
    for Name { datname } in idle {
        let Some(pid) = owner_pid(&datname) else { continue };
        if pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            if let Err(e) = crate::database::drop_database(&server, &datname) {
                eprintln!("could not sweep abandoned test database {datname}: {e}");
            }
        }
    }
}

/// The process id in a test database's name (`test_<prefix>_<pid>_<suffix>`).
fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(NAME_PREFIX)?;
    let mut parts = rest.rsplitn(3, '_');
    let _suffix = parts.next()?;
    let pid = parts.next()?;
    parts.next()?;
    pid.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_name_tells_its_owner() {
        assert_eq!(owner_pid("test_dtp_4242_00ff00ff00ff00ff"), Some(4242));
        assert_eq!(owner_pid("test_tls_cluster_17_template"), Some(17));
        assert_eq!(owner_pid(&database_name("web", "x")), Some(std::process::id()));
        assert_eq!(owner_pid("test_dtp_x"), None);
        assert_eq!(owner_pid("dtp"), None);
        assert_eq!(owner_pid("test_dtp_notapid_1"), None);
    }
}
