//! A connection taken out of the pool for good by one caller that runs the same few
//! statements all the time (the engine's claim loop), with session settings of its own.
//! It skips the pool's checkout, and its settings never leak to other pooled work.

use deadpool::managed::Object;
use diesel::connection::SimpleConnection;
use diesel::PgConnection;
use tokio::sync::Mutex;

use crate::database::{run_on, Pool, StoreError};

type Held = deadpool_diesel::Connection<PgConnection>;

/// One connection, used by one caller at a time, replaced from the pool whenever it fails.
/// The pool may open another connection in its place, so the service holds one more
/// connection than its pool size.
pub struct DedicatedConnection {
    pool: Pool,
    settings: &'static str,
    held: Mutex<Option<Held>>,
}

impl DedicatedConnection {
    /// `settings` (SQL, e.g. `SET ...`) runs once on every connection taken.
    pub fn new(pool: Pool, settings: &'static str) -> Self {
        Self {
            pool,
            settings,
            held: Mutex::new(None),
        }
    }

    /// Runs `query` on the connection, taking a new one first if there is none. A
    /// connection whose query failed for any reason but the statement itself is dropped.
    pub async fn run<T, F>(&self, query: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut PgConnection) -> Result<T, diesel::result::Error> + Send + 'static,
    {
        let mut held = self.held.lock().await;
        let conn = match held.take() {
            Some(conn) => conn,
            None => self.take_from_pool().await?,
        };
        let result = run_on(&conn, query).await;
        if !matches!(result, Err(StoreError::Unavailable(_))) {
            *held = Some(conn);
        }
        result
    }

    async fn take_from_pool(&self) -> Result<Held, StoreError> {
        let pooled = self
            .pool
            .get()
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let conn = Object::take(pooled);
        let settings = self.settings;
        run_on(&conn, move |conn| conn.batch_execute(settings)).await?;
        Ok(conn)
    }
}

#[cfg(test)]
mod tests {
    /// Against a real server: the connection's own settings, keeping it across runs and
    /// failed statements, and replacing it once its server went away.
    #[cfg(feature = "testing")]
    mod server {
        use diesel::prelude::*;

        use super::super::*;
        use crate::database::run;
        use crate::testing::TestDatabase;

        #[derive(Debug, QueryableByName)]
        struct Session {
            #[diesel(sql_type = diesel::sql_types::Integer)]
            pid: i32,
            #[diesel(sql_type = diesel::sql_types::Text)]
            plan_cache_mode: String,
        }

        fn session(conn: &mut PgConnection) -> QueryResult<Session> {
            diesel::sql_query(
                "SELECT pg_backend_pid() AS pid, current_setting('plan_cache_mode') AS plan_cache_mode",
            )
            .get_result(conn)
        }

        const GENERIC: &str = "SET plan_cache_mode = force_generic_plan";

        #[tokio::test]
        async fn its_settings_are_its_own_and_the_pool_goes_on_without_it() {
            let db = TestDatabase::new("dedicated");
            let pool = db.pool(1);
            let dedicated = DedicatedConnection::new(pool.clone(), GENERIC);

            let own = dedicated.run(session).await.unwrap();
            assert_eq!(own.plan_cache_mode, "force_generic_plan");
            // The pool of one opened another connection in its place.
            let pooled = run(&pool, session).await.unwrap();
            assert_eq!(pooled.plan_cache_mode, "force_custom_plan");
            assert_ne!(pooled.pid, own.pid);
        }

        #[tokio::test]
        async fn it_keeps_its_connection_across_runs_and_failed_statements() {
            let db = TestDatabase::new("dedicated");
            let dedicated = DedicatedConnection::new(db.pool(2), GENERIC);

            let first = dedicated.run(session).await.unwrap();
            let failed = dedicated
                .run(|conn| diesel::sql_query("SELECT 1 / 0").execute(conn))
                .await;
            assert!(matches!(failed, Err(StoreError::Query(_))), "{failed:?}");
            let again = dedicated.run(session).await.unwrap();
            assert_eq!(again.pid, first.pid);
        }

        #[tokio::test]
        async fn a_connection_whose_server_went_away_fails_once_and_is_replaced() {
            let db = TestDatabase::new("dedicated");
            let dedicated = DedicatedConnection::new(db.pool(2), GENERIC);
            let first = dedicated.run(session).await.unwrap();
            db.end_connections();

            let lost = dedicated.run(session).await;
            assert!(matches!(lost, Err(StoreError::Unavailable(_))), "{lost:?}");
            let replaced = dedicated.run(session).await.unwrap();
            assert_ne!(replaced.pid, first.pid);
            assert_eq!(replaced.plan_cache_mode, "force_generic_plan");
        }
    }
}
