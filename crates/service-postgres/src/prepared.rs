//! Statements a connection keeps prepared. Diesel prepares and caches the statements it
//! builds itself, but never raw SQL (`sql_query`) nor UPDATEs and inserts: those are parsed
//! and planned by Postgres on every run, which on the hot path cost more than running them.

use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::{QueryResult, RunQueryDsl};

/// A statement whose SQL text is fixed (or takes a handful of shapes), marked safe to keep
/// prepared: each connection parses it once, keyed by its text. (Pooled connections still
/// plan each run for its parameters; see `database::PgManager`.) Wrap only statements whose
/// text does not grow with their input.
#[derive(Debug, Clone, Copy)]
pub struct Prepared<Q>(pub Q);

impl<Q: QueryFragment<Pg>> QueryFragment<Pg> for Prepared<Q> {
    fn walk_ast<'b>(&'b self, pass: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        self.0.walk_ast(pass)
    }

    fn is_safe_to_cache_prepared(&self, _backend: &Pg) -> QueryResult<bool> {
        Ok(true)
    }
}

/// No static id: the cache keys the statement by its SQL text and bind types.
impl<Q> QueryId for Prepared<Q> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q: Query> Query for Prepared<Q> {
    type SqlType = Q::SqlType;
}

impl<Q, Conn> RunQueryDsl<Conn> for Prepared<Q> {}

#[cfg(test)]
#[cfg(feature = "testing")]
mod tests {
    use super::*;
    use crate::testing::TestDatabase;
    use diesel::sql_types::{BigInt, Integer};
    use diesel::{PgConnection, QueryableByName};

    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }

    #[derive(QueryableByName)]
    struct Echo {
        #[diesel(sql_type = Integer)]
        v: i32,
    }

    fn kept_statements(conn: &mut PgConnection, text: &str) -> i64 {
        diesel::sql_query("SELECT count(*) AS n FROM pg_prepared_statements WHERE statement = $1")
            .bind::<diesel::sql_types::Text, _>(text)
            .get_result::<Count>(conn)
            .unwrap()
            .n
    }

    #[test]
    fn raw_sql_is_kept_prepared_only_when_wrapped() {
        let db = TestDatabase::new("prepared");
        db.create();
        let mut conn = db.connect();
        let wrapped = "SELECT $1::int AS v";
        let plain = "SELECT $1::int + 0 AS v";
        for v in 1..=3 {
            let echo: Echo = Prepared(diesel::sql_query(wrapped).bind::<Integer, _>(v))
                .get_result(&mut conn)
                .unwrap();
            assert_eq!(echo.v, v);
            let echo: Echo = diesel::sql_query(plain)
                .bind::<Integer, _>(v)
                .get_result(&mut conn)
                .unwrap();
            assert_eq!(echo.v, v);
        }
        assert_eq!(
            kept_statements(&mut conn, wrapped),
            1,
            "parsed once, kept for reuse"
        );
        assert_eq!(
            kept_statements(&mut conn, plain),
            0,
            "diesel's default: parsed on every run"
        );
    }
}
