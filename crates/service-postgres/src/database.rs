//! Start-up and access plumbing for a service that owns one Postgres database:
//! create the database when it is missing, apply embedded migrations under an advisory
//! lock (several processes may start at once), build the pool, and run queries on it.

use std::time::Duration;

use deadpool::managed::{Metrics, RecycleResult};
use deadpool_diesel::{ManagerConfig, RecyclingMethod, Runtime, Timeouts};
use diesel::connection::{SimpleConnection, TransactionManager};
use diesel::prelude::*;
use diesel::result::DatabaseErrorKind;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness};

/// The pool every service queries its database through.
pub type Pool = deadpool::managed::Pool<PgManager>;
pub use Pool as PgPool;

/// Statements stay prepared per connection (`prepared::Prepared`), but each run is planned
/// for its own parameters: a generic plan, built once from the statistics of the moment,
/// chose to walk the whole primary key for every claim once the table held a long history.
const PER_CONNECTION_SETTINGS: &str = "SET plan_cache_mode = force_custom_plan";

/// A pooled connection unused for longer than this is checked with a query before reuse.
const VERIFY_AFTER_IDLE: Duration = Duration::from_secs(1);

/// How long a request waits for a pooled connection before the database counts as unavailable.
pub const DEFAULT_CHECKOUT_TIMEOUT: Duration = Duration::from_secs(3);

/// Seconds libpq may spend establishing one connection, unless the URL says otherwise.
const DEFAULT_CONNECT_TIMEOUT_SECS: &str = "5";

/// Why a service could not bring its database up at start-up.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("invalid database URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("cannot connect to Postgres at {target}: {reason}")]
    Connect { target: String, reason: String },
    #[error("cannot create database {name:?}: {source}")]
    Create {
        name: String,
        #[source]
        source: diesel::result::Error,
    },
    #[error("cannot apply migrations to {name:?}: {reason}")]
    Migrate { name: String, reason: String },
    #[error("cannot build connection pool: {0}")]
    Pool(String),
}

/// Why a service's store could not answer (its one error type for every query).
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

impl StoreError {
    /// A failed statement: unavailable when the connection, not the statement, failed.
    pub fn of_statement(err: diesel::result::Error) -> Self {
        if is_connection_loss(&err) {
            StoreError::Unavailable(err.to_string())
        } else {
            StoreError::Query(err)
        }
    }
}

impl From<diesel::result::Error> for StoreError {
    fn from(err: diesel::result::Error) -> Self {
        StoreError::of_statement(err)
    }
}

/// Runs store functions on a pooled connection: unavailable when the pool, the connection
/// or the thread running the query failed (the connection is then never handed out again), a
/// query error when the statement did.
pub async fn run<T, F>(pool: &Pool, query: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce(&mut PgConnection) -> diesel::QueryResult<T> + Send + 'static,
{
    run_pooled(pool, query, false).await
}

/// A parsed Postgres URL split into the server part and the database name.
#[derive(Debug, Clone)]
pub struct DatabaseUrl {
    url: url::Url,
    name: String,
    /// The URL as configured (before the defaults added here), its password masked.
    configured: String,
}

impl DatabaseUrl {
    pub fn parse(raw: &str) -> Result<Self, BootstrapError> {
        let invalid = |reason: &str| BootstrapError::InvalidUrl {
            url: redact(raw),
            reason: reason.to_owned(),
        };
        let mut url = url::Url::parse(raw).map_err(|e| invalid(&e.to_string()))?;
        let configured = redact(raw);
        if !matches!(url.scheme(), "postgres" | "postgresql") {
            return Err(invalid("scheme must be postgres:// or postgresql://"));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(invalid("no host"));
        }
        let name = url.path().trim_start_matches('/').to_owned();
        if name.is_empty() || name.contains('/') {
            return Err(invalid("no database name in the path"));
        }
        // libpq waits forever for an unreachable host unless told otherwise.
        if !url.query_pairs().any(|(k, _)| k == "connect_timeout") {
            url.query_pairs_mut()
                .append_pair("connect_timeout", DEFAULT_CONNECT_TIMEOUT_SECS);
        }
        // Traffic to a loopback address never leaves the machine, so TLS there buys nothing
        // and costs every round trip (`bench/RESULTS.md`, "What changed"). libpq's default
        // would negotiate it; an explicit sslmode always wins.
        let loopback = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]" | "::1"));
        if loopback && !url.query_pairs().any(|(k, _)| k == "sslmode") {
            url.query_pairs_mut().append_pair("sslmode", "disable");
        }
        // The connections the services open themselves read the same settings: refuse at
        // start-up what they could not use, rather than fall back to polling later.
        crate::postgres_tls::TlsSettings::from_url(url.as_str())
            .and_then(|settings| settings.connector().map(drop))
            .map_err(|e| invalid(&e.to_string()))?;
        Ok(Self {
            url,
            name,
            configured,
        })
    }

    /// The database name, e.g. `dtp`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The full URL of the service's own database.
    pub fn as_str(&self) -> &str {
        self.url.as_str()
    }

    /// The same server's `postgres` database, used to create or drop others.
    pub fn maintenance_url(&self) -> String {
        self.with_database("postgres")
    }

    /// The same server with another database name.
    pub fn with_database(&self, name: &str) -> String {
        let mut url = self.url.clone();
        url.set_path(&format!("/{name}"));
        url.to_string()
    }

    /// The URL as configured, without its password, for logs and error messages.
    pub fn redacted(&self) -> String {
        self.configured.clone()
    }
}

fn redact(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("***"));
            url.to_string()
        }
        _ => raw.to_owned(),
    }
}

/// Creates the database when it does not exist yet; tolerates a concurrent creator.
/// Failing to reach the server names the database configured, not the `postgres` database
/// this goes through: that one is an implementation detail.
pub fn ensure_database(db: &DatabaseUrl) -> Result<(), BootstrapError> {
    let mut conn = PgConnection::establish(&db.maintenance_url()).map_err(|e| BootstrapError::Connect {
        target: db.redacted(),
        reason: one_line(&e.to_string()),
    })?;
    let exists = diesel::select(diesel::dsl::sql::<diesel::sql_types::Bool>(&format!(
        "EXISTS (SELECT 1 FROM pg_database WHERE datname = {})",
        quote_literal(db.name())
    )))
    .get_result::<bool>(&mut conn)
    .map_err(|source| BootstrapError::Create {
        name: db.name().to_owned(),
        source,
    })?;
    if exists {
        return Ok(());
    }
    match diesel::sql_query(format!("CREATE DATABASE {}", quote_ident(db.name()))).execute(&mut conn) {
        Ok(_) => {
            tracing::info!(database = db.name(), "created database");
            Ok(())
        }
        // Another process created it between our check and our CREATE.
        Err(diesel::result::Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => Ok(()),
        Err(e) if e.to_string().contains("already exists") => Ok(()),
        Err(source) => Err(BootstrapError::Create {
            name: db.name().to_owned(),
            source,
        }),
    }
}

/// Drops database `name` on `server`'s Postgres, ending its open connections.
pub fn drop_database(server: &DatabaseUrl, name: &str) -> Result<(), BootstrapError> {
    let maintenance = server.maintenance_url();
    let mut conn = PgConnection::establish(&maintenance).map_err(|e| BootstrapError::Connect {
        target: redact(&maintenance),
        reason: one_line(&e.to_string()),
    })?;
    diesel::sql_query(format!(
        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
        quote_ident(name)
    ))
    .execute(&mut conn)
    .map_err(|source| BootstrapError::Create {
        name: name.to_owned(),
        source,
    })?;
    Ok(())
}

/// Applies pending migrations; an advisory lock serialises concurrent starters.
pub fn run_migrations(db: &DatabaseUrl, migrations: EmbeddedMigrations) -> Result<(), BootstrapError> {
    // Advisory locks are per database, so one key serves every service.
    const MIGRATION_LOCK_KEY: i64 = 0x0064_7470_5f6d_6967;
    let mut conn = PgConnection::establish(db.as_str()).map_err(|e| BootstrapError::Connect {
        target: db.redacted(),
        reason: one_line(&e.to_string()),
    })?;
    let migrate_err = |reason: String| BootstrapError::Migrate {
        name: db.name().to_owned(),
        reason,
    };
    diesel::sql_query(format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"))
        .execute(&mut conn)
        .map_err(|e| migrate_err(e.to_string()))?;
    let applied = conn
        .run_pending_migrations(migrations)
        .map(|versions| versions.len())
        .map_err(|e| migrate_err(e.to_string()));
    let _ = diesel::sql_query(format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})")).execute(&mut conn);
    let applied = applied?;
    if applied > 0 {
        tracing::info!(database = db.name(), applied, "applied migrations");
    }
    Ok(())
}

/// Creates (if needed) and migrates the database, then returns a pool over it.
pub fn bootstrap(
    db: &DatabaseUrl,
    migrations: EmbeddedMigrations,
    max_connections: usize,
) -> Result<Pool, BootstrapError> {
    ensure_database(db)?;
    run_migrations(db, migrations)?;
    build_pool(db, max_connections)
}

/// A pool whose idle connections are checked before reuse, so a Postgres restart heals by itself.
pub fn build_pool(db: &DatabaseUrl, max_connections: usize) -> Result<Pool, BootstrapError> {
    let manager = PgManager {
        connections: deadpool_diesel::postgres::Manager::from_config(
            db.as_str(),
            Runtime::Tokio1,
            ManagerConfig {
                recycling_method: RecyclingMethod::Verified,
            },
        ),
    };
    Pool::builder(manager)
        .max_size(max_connections)
        .timeouts(Timeouts {
            wait: Some(DEFAULT_CHECKOUT_TIMEOUT),
            create: Some(DEFAULT_CHECKOUT_TIMEOUT),
            recycle: Some(DEFAULT_CHECKOUT_TIMEOUT),
        })
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|e| BootstrapError::Pool(e.to_string()))
}

/// Creates connections (with `PER_CONNECTION_SETTINGS`), and checks an idle one
/// (`SELECT 1`) before handing it out again. A connection back from use within the last
/// second skips that round trip (and the blocking-thread hop it takes): on a busy service the
/// check doubled the statements and sat on every pickup's path. One that fails in use is
/// dropped at once (`run`).
pub struct PgManager {
    connections: deadpool_diesel::postgres::Manager,
}

impl deadpool::managed::Manager for PgManager {
    type Type = deadpool_diesel::Connection<PgConnection>;
    type Error = deadpool_diesel::Error;

    async fn create(&self) -> Result<Self::Type, Self::Error> {
        let conn = self.connections.create().await?;
        conn.interact(|conn| conn.batch_execute(PER_CONNECTION_SETTINGS))
            .await
            .map_err(|e| {
                deadpool_diesel::Error::Connection(diesel::ConnectionError::BadConnection(e.to_string()))
            })?
            .map_err(|e| {
                deadpool_diesel::Error::Connection(diesel::ConnectionError::CouldntSetupConfiguration(e))
            })?;
        Ok(conn)
    }

    async fn recycle(&self, conn: &mut Self::Type, metrics: &Metrics) -> RecycleResult<Self::Error> {
        if metrics.last_used() < VERIFY_AFTER_IDLE && in_clean_state(conn) {
            return Ok(());
        }
        self.connections.recycle(conn, metrics).await
    }
}

/// Not poisoned, not in use, and not left inside a transaction.
fn in_clean_state(conn: &deadpool_diesel::Connection<PgConnection>) -> bool {
    match conn.try_lock() {
        Ok(mut guard) => {
            !<PgConnection as Connection>::TransactionManager::is_broken_transaction_manager(&mut *guard)
        }
        Err(_) => false,
    }
}

/// As `run`, then closes the connection instead of returning it to the pool: after a
/// statement of many megabytes, its buffers (which libpq never shrinks) go with it.
pub(crate) async fn run_then_close<T, F>(pool: &Pool, query: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce(&mut PgConnection) -> diesel::QueryResult<T> + Send + 'static,
{
    run_pooled(pool, query, true).await
}

/// `run`, closing the connection afterwards when `close` or when it failed.
async fn run_pooled<T, F>(pool: &Pool, query: F, close: bool) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce(&mut PgConnection) -> diesel::QueryResult<T> + Send + 'static,
{
    let conn = pool
        .get()
        .await
        .map_err(|e| StoreError::Unavailable(e.to_string()))?;
    let result = run_on(&conn, query).await;
    if close || matches!(result, Err(StoreError::Unavailable(_))) {
        drop(deadpool::managed::Object::take(conn));
    }
    result
}

/// Runs `query` on `conn` on a blocking thread: unavailable when the connection, or the
/// thread running the query, failed; a query error when the statement did.
pub(crate) async fn run_on<T, F>(
    conn: &deadpool_diesel::Connection<PgConnection>,
    query: F,
) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce(&mut PgConnection) -> Result<T, diesel::result::Error> + Send + 'static,
{
    conn.interact(query)
        .await
        .map_err(|e| StoreError::Unavailable(format!("connection task failed: {e}")))?
        .map_err(StoreError::of_statement)
}

/// True when the error says the connection, not the statement, failed.
pub fn is_connection_loss(err: &diesel::result::Error) -> bool {
    match err {
        diesel::result::Error::DatabaseError(DatabaseErrorKind::ClosedConnection, _) => true,
        diesel::result::Error::DatabaseError(DatabaseErrorKind::UnableToSendCommand, _) => true,
        diesel::result::Error::DatabaseError(_, info) => {
            // 57P01 admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now.
            let msg = info.message();
            [
                "terminating connection",
                "server closed the connection",
                "the database system is",
                "no connection to the server",
                "could not receive data from server",
                "could not send data to server",
                "SSL connection has been closed",
                "SSL SYSCALL error",
            ]
            .iter()
            .any(|sign| msg.contains(sign))
        }
        _ => false,
    }
}

/// libpq's messages span lines and repeat per address tried; keep the first line.
fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("unknown error")
        .to_owned()
}

/// Quotes an SQL identifier (a database name).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes an SQL string literal.
pub fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_server_and_database() {
        let db = DatabaseUrl::parse("postgres://postgres:secret@localhost:5432/dtp").unwrap();
        assert_eq!(db.name(), "dtp");
        assert_eq!(
            db.maintenance_url(),
            "postgres://postgres:secret@localhost:5432/postgres?connect_timeout=5&sslmode=disable"
        );
        let explicit =
            DatabaseUrl::parse("postgres://localhost/dtp?connect_timeout=1&sslmode=require").unwrap();
        assert_eq!(
            explicit.as_str(),
            "postgres://localhost/dtp?connect_timeout=1&sslmode=require"
        );
        let remote = DatabaseUrl::parse("postgres://db.internal/dtp").unwrap();
        assert_eq!(remote.as_str(), "postgres://db.internal/dtp?connect_timeout=5");
        assert!(db.redacted().contains("***"));
        assert!(!db.redacted().contains("secret"));
    }

    #[test]
    fn an_unreachable_server_is_reported_as_the_database_configured() {
        // Nothing listens on port 1: the refusal is immediate.
        let db = DatabaseUrl::parse("postgres://postgres:secret@127.0.0.1:1/dtp").unwrap();
        assert_eq!(db.redacted(), "postgres://postgres:***@127.0.0.1:1/dtp");
        let error = ensure_database(&db).unwrap_err().to_string();
        assert!(
            error.starts_with("cannot connect to Postgres at postgres://postgres:***@127.0.0.1:1/dtp: "),
            "{error}"
        );
        assert!(!error.contains(":1/postgres") && !error.contains('\n'), "{error}");
    }

    #[test]
    fn rejects_urls_that_name_no_database() {
        for raw in [
            "not a url",
            "mysql://localhost/dtp",
            "postgres://localhost",
            "postgres://localhost/",
        ] {
            assert!(DatabaseUrl::parse(raw).is_err(), "{raw} should be rejected");
        }
    }

    #[test]
    fn a_lost_server_is_told_from_a_failed_statement() {
        use diesel::result::{DatabaseErrorKind, Error};
        let error = |kind, message: &str| Error::DatabaseError(kind, Box::new(message.to_owned()));
        for lost in [
            "SSL connection has been closed unexpectedly",
            "SSL SYSCALL error: EOF detected",
            "no connection to the server",
            "FATAL: terminating connection due to administrator command",
            "could not receive data from server: Connection reset by peer",
        ] {
            assert!(
                is_connection_loss(&error(DatabaseErrorKind::Unknown, lost)),
                "{lost}"
            );
        }
        assert!(is_connection_loss(&error(
            DatabaseErrorKind::ClosedConnection,
            ""
        )));
        assert!(!is_connection_loss(&error(
            DatabaseErrorKind::UniqueViolation,
            "duplicate key value violates unique constraint"
        )));
        assert!(!is_connection_loss(&Error::NotFound));
    }

    #[test]
    fn quotes_identifiers_and_literals() {
        assert_eq!(quote_ident(r#"a"b"#), r#""a""b""#);
        assert_eq!(quote_literal("it's"), "'it''s'");
    }

    /// Pool behaviour against a real server: the settings of a new connection, and a
    /// connection whose server went away while it sat in the pool.
    #[cfg(feature = "testing")]
    mod pool {
        use super::*;
        use crate::testing::TestDatabase;

        async fn one_connection_pool(db: &TestDatabase) -> Pool {
            let pool = db.pool(1);
            run(&pool, |conn| diesel::sql_query("SELECT 1").execute(conn))
                .await
                .unwrap();
            pool
        }

        #[tokio::test]
        async fn a_recently_used_connection_that_lost_its_server_fails_once_and_is_replaced() {
            let db = TestDatabase::new("pool");
            let pool = one_connection_pool(&db).await;
            db.end_connections();

            let first = run(&pool, |conn| diesel::sql_query("SELECT 1").execute(conn)).await;
            assert!(matches!(first, Err(StoreError::Unavailable(_))), "{first:?}");
            let second = run(&pool, |conn| diesel::sql_query("SELECT 1").execute(conn)).await;
            assert_eq!(second.unwrap(), 1);
        }

        #[derive(QueryableByName)]
        struct Setting {
            #[diesel(sql_type = diesel::sql_types::Text)]
            plan_cache_mode: String,
        }

        #[tokio::test]
        async fn pooled_connections_plan_each_run_for_its_parameters() {
            let db = TestDatabase::new("pool");
            let pool = one_connection_pool(&db).await;
            let setting = run(&pool, |conn| {
                diesel::sql_query("SHOW plan_cache_mode").get_result::<Setting>(conn)
            })
            .await
            .unwrap();
            assert_eq!(setting.plan_cache_mode, "force_custom_plan");
        }

        #[tokio::test]
        async fn an_idle_connection_is_checked_before_reuse() {
            let db = TestDatabase::new("pool");
            let pool = one_connection_pool(&db).await;
            db.end_connections();
            tokio::time::sleep(VERIFY_AFTER_IDLE + Duration::from_millis(200)).await;

            let first = run(&pool, |conn| diesel::sql_query("SELECT 1").execute(conn)).await;
            assert_eq!(first.unwrap(), 1, "the check replaced the dead connection unseen");
        }
    }
}
