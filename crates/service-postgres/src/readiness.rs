//! Whether a service's own database can serve it: it answers, and every migration the
//! binary embeds is applied. What `/readyz` of both services reports.

use diesel::RunQueryDsl;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness};

use crate::database::{run, Pool};

/// What the readiness check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseReadiness {
    Ready,
    /// The database answers, but this binary has migrations it has not applied.
    MigrationsPending,
    /// The database did not answer.
    Unavailable,
}

/// Checks the database behind `pool` against `migrations`.
pub async fn check(pool: &Pool, migrations: EmbeddedMigrations) -> DatabaseReadiness {
    let checked = run(pool, move |conn| {
        diesel::sql_query("SELECT 1").execute(conn)?;
        conn.has_pending_migration(migrations)
            .map_err(|e| diesel::result::Error::QueryBuilderError(e.to_string().into()))
    })
    .await;
    match checked {
        Ok(false) => DatabaseReadiness::Ready,
        Ok(true) => DatabaseReadiness::MigrationsPending,
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            DatabaseReadiness::Unavailable
        }
    }
}
