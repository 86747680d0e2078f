//! The dashboard's aggregate reads over `web_tasks` and the execution mirror: counts by type
//! and execution status, and per-minute throughput and pickup latency of the last hour.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Double, Nullable, Text, Timestamptz};

/// How many of a tenant's web tasks of one type are in one execution status (`UNBOUND` for
/// web tasks not bound yet, `UNKNOWN` for bound ones TaskPilot has not heard of).
#[derive(Debug, QueryableByName)]
pub struct StatusCount {
    #[diesel(sql_type = Text)]
    pub task_type: String,
    #[diesel(sql_type = Text)]
    pub status: String,
    #[diesel(sql_type = BigInt)]
    pub count: i64,
}

/// What happened in one minute.
#[derive(Debug, QueryableByName)]
pub struct MinuteFigures {
    #[diesel(sql_type = Timestamptz)]
    pub minute: DateTime<Utc>,
    /// Executions that finished in the minute.
    #[diesel(sql_type = BigInt)]
    pub finished: i64,
    /// Of first attempts that started in the minute: creation to start, in ms.
    #[diesel(sql_type = Nullable<Double>)]
    pub pickup_p50_ms: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub pickup_p95_ms: Option<f64>,
}

/// Counts of `tenant`'s web tasks by type and execution status.
pub fn status_counts(conn: &mut PgConnection, tenant: &str) -> QueryResult<Vec<StatusCount>> {
    diesel::sql_query(
        "SELECT w.task_type, \
                CASE WHEN w.scheduler_task_id IS NULL THEN 'UNBOUND' ELSE coalesce(e.status, 'UNKNOWN') END AS status, \
                count(*) AS count \
         FROM web_tasks w LEFT JOIN task_executions e ON e.scheduler_task_id = w.scheduler_task_id \
         WHERE w.tenant = $1 GROUP BY 1, 2 ORDER BY 1, 2",
    )
    .bind::<Text, _>(tenant)
    .load(conn)
}

/// Per minute since `since` (minutes with nothing left out): finished executions of
/// `tenant`, and the pickup latency of first attempts (tasks that were not retried).
pub fn minutes_since(
    conn: &mut PgConnection,
    tenant: &str,
    since: DateTime<Utc>,
) -> QueryResult<Vec<MinuteFigures>> {
    diesel::sql_query(
        "WITH finished AS ( \
             SELECT date_trunc('minute', completed_at) AS minute, count(*) AS finished \
             FROM task_executions \
             WHERE tenant = $1 AND completed_at >= $2 AND status IN ('SUCCEEDED', 'FAILED', 'CANCELED') \
             GROUP BY 1 \
         ), pickup AS ( \
             SELECT date_trunc('minute', started_at) AS minute, \
                    percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM started_at - created_at) * 1000) AS p50, \
                    percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM started_at - created_at) * 1000) AS p95 \
             FROM task_executions \
             WHERE tenant = $1 AND started_at >= $2 AND attempt_count = 1 AND created_at IS NOT NULL \
             GROUP BY 1 \
         ) \
         SELECT coalesce(f.minute, p.minute) AS minute, coalesce(f.finished, 0) AS finished, \
                p.p50 AS pickup_p50_ms, p.p95 AS pickup_p95_ms \
         FROM finished f FULL JOIN pickup p ON p.minute = f.minute ORDER BY 1",
    )
    .bind::<Text, _>(tenant)
    .bind::<Timestamptz, _>(since)
    .load(conn)
}

/// When the follower of `feed` last moved its position, if it ever did.
pub fn feed_moved_at(conn: &mut PgConnection, feed: &str) -> QueryResult<Option<DateTime<Utc>>> {
    use super::schema::feed_positions;
    feed_positions::table
        .find(feed)
        .select(feed_positions::updated_at)
        .first(conn)
        .optional()
}

#[derive(QueryableByName)]
struct Following {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    following: bool,
}

/// Whether a process of this database holds the follower's lock (`execution_follower`),
/// that is, whether the mirror is being kept up.
pub fn someone_follows(conn: &mut PgConnection) -> QueryResult<bool> {
    diesel::sql_query(
        "SELECT EXISTS ( \
             SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted \
               AND classid = 1413 AND objid = 4654 AND objsubid = 2 \
               AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
         ) AS following",
    )
    .get_result::<Following>(conn)
    .map(|f| f.following)
}
