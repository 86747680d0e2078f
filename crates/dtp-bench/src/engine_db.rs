//! A fresh engine database per measurement: created and migrated before any engine runs,
//! filled through the API (a long history straight through SQL), read back for the
//! figures, and dropped afterwards. Engine-side figures use the engine's own timestamps.

use anyhow::Context;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Double, Nullable, Text};
use service_postgres::database::{self, DatabaseUrl};

use crate::scratch_db::ScratchDatabase;

pub struct EngineDatabase {
    db: ScratchDatabase,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct Exists {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    found: bool,
}

#[derive(QueryableByName)]
struct Created {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    created_at: DateTime<Utc>,
}

#[derive(QueryableByName)]
struct Span {
    #[diesel(sql_type = Nullable<Double>)]
    seconds: Option<f64>,
}

#[derive(QueryableByName)]
struct Millis {
    #[diesel(sql_type = Double)]
    ms: f64,
}

#[derive(QueryableByName)]
struct WorkerShare {
    #[diesel(sql_type = Text)]
    worker_id: String,
    #[diesel(sql_type = BigInt)]
    n: i64,
}

impl EngineDatabase {
    /// Creates database `bench_{label}_…` on `server` and applies the engine's migrations.
    pub fn create(server: &DatabaseUrl, label: &str) -> anyhow::Result<Self> {
        let db = ScratchDatabase::create(server, label)?;
        database::run_migrations(&DatabaseUrl::parse(db.url())?, dtp_engine::startup::MIGRATIONS)
            .with_context(|| format!("migrate {}", db.name()))?;
        Ok(Self { db })
    }

    pub fn url(&self) -> &str {
        self.db.url()
    }

    /// The highest task id so far: tasks seeded after it are the ones a run measures.
    pub fn last_task_id(&mut self) -> anyhow::Result<i64> {
        self.count("SELECT COALESCE(max(id), 0) AS n FROM tasks")
    }

    /// Turns the change feed off on this database (its triggers), to measure what it costs.
    pub fn disable_change_feed(&mut self) -> anyhow::Result<()> {
        diesel::sql_query(
            "ALTER TABLE tasks DISABLE TRIGGER tasks_record_created, DISABLE TRIGGER tasks_record_changes",
        )
        .execute(self.db.conn())
        .context("disable the change feed")?;
        Ok(())
    }

    /// A long-lived queue's history (see `dtp_engine::testing::seed_history`).
    pub fn seed_history(&mut self, finished: i64, future: i64) -> anyhow::Result<()> {
        dtp_engine::testing::seed_history(self.db.conn(), finished, future).context("seed history")
    }

    /// See `ScratchDatabase::checkpoint`.
    pub fn checkpoint(&mut self) -> anyhow::Result<()> {
        self.db.checkpoint()
    }

    /// Whether any task after `boundary` is not finished yet. The drain polls this every
    /// few milliseconds, so it stops at the first row of the pending and the running
    /// partial indexes: a count walks every entry, dead ones included, and took about as
    /// long as the poll interval, a load on the very Postgres being measured.
    pub fn any_unfinished_after(&mut self, boundary: i64) -> anyhow::Result<bool> {
        let row: Exists = diesel::sql_query(
            "SELECT EXISTS (SELECT 1 FROM tasks WHERE status = 'PENDING' AND id > $1) \
                 OR EXISTS (SELECT 1 FROM tasks WHERE status = 'RUNNING' AND id > $1) AS found",
        )
        .bind::<BigInt, _>(boundary)
        .get_result(self.db.conn())?;
        Ok(row.found)
    }

    /// Seconds from the first claim to the last completion among the attempts of tasks
    /// after `boundary` (both the database's clock).
    pub fn drain_seconds(&mut self, boundary: i64) -> anyhow::Result<f64> {
        let span: Span = diesel::sql_query(
            "SELECT EXTRACT(EPOCH FROM max(finished_at) - min(started_at))::float8 AS seconds \
             FROM task_attempts WHERE task_id > $1",
        )
        .bind::<BigInt, _>(boundary)
        .get_result(self.db.conn())?;
        Ok(span.seconds.unwrap_or(0.0))
    }

    /// Tasks after `boundary` that did not run exactly once to success: not SUCCEEDED, a
    /// count other than 1, or other than one attempt row, which succeeded.
    pub fn not_run_exactly_once(&mut self, boundary: i64) -> anyhow::Result<i64> {
        let row: Count = diesel::sql_query(
            "SELECT count(*) AS n FROM tasks t \
             LEFT JOIN (SELECT task_id, count(*) AS attempts, bool_and(outcome = 'SUCCEEDED') AS succeeded \
                        FROM task_attempts WHERE task_id > $1 GROUP BY task_id) a ON a.task_id = t.id \
             WHERE t.id > $1 AND (t.status <> 'SUCCEEDED' OR t.attempt_count <> 1 \
                   OR a.attempts IS DISTINCT FROM 1 OR a.succeeded IS NOT TRUE)",
        )
        .bind::<BigInt, _>(boundary)
        .get_result(self.db.conn())?;
        Ok(row.n)
    }

    /// Attempts per worker process for tasks after `boundary`, most first.
    pub fn attempts_by_worker(&mut self, boundary: i64) -> anyhow::Result<Vec<(String, i64)>> {
        let shares: Vec<WorkerShare> = diesel::sql_query(
            "SELECT worker_id, count(*) AS n FROM task_attempts WHERE task_id > $1 \
             GROUP BY worker_id ORDER BY n DESC",
        )
        .bind::<BigInt, _>(boundary)
        .load(self.db.conn())?;
        Ok(shares.into_iter().map(|s| (s.worker_id, s.n)).collect())
    }

    /// Per task among `ids`: its first attempt's `started_at` (the claim's `now()`) minus the
    /// task's `created_at` (the insert's `now()`), in milliseconds.
    pub fn claim_latencies_ms(&mut self, ids: &[i64]) -> anyhow::Result<Vec<f64>> {
        let rows: Vec<Millis> = diesel::sql_query(
            "SELECT (EXTRACT(EPOCH FROM a.started_at - t.created_at) * 1000)::float8 AS ms \
             FROM tasks t JOIN task_attempts a ON a.task_id = t.id AND a.attempt = 1 \
             WHERE t.id = ANY($1)",
        )
        .bind::<Array<BigInt>, _>(ids)
        .load(self.db.conn())?;
        Ok(rows.into_iter().map(|r| r.ms).collect())
    }

    /// Each of `ids` with its `created_at` (the insert's `now()`).
    pub fn created_at(&mut self, ids: &[i64]) -> anyhow::Result<Vec<(i64, DateTime<Utc>)>> {
        let rows: Vec<Created> = diesel::sql_query("SELECT id, created_at FROM tasks WHERE id = ANY($1)")
            .bind::<Array<BigInt>, _>(ids)
            .load(self.db.conn())?;
        Ok(rows.into_iter().map(|r| (r.id, r.created_at)).collect())
    }

    /// Tasks per second from the first insert to the last completion among `ids`: the rate
    /// at which the engine actually got through them.
    pub fn completion_rate(&mut self, ids: &[i64]) -> anyhow::Result<f64> {
        let span: Span = diesel::sql_query(
            "SELECT EXTRACT(EPOCH FROM max(a.finished_at) - min(t.created_at))::float8 AS seconds \
             FROM tasks t JOIN task_attempts a ON a.task_id = t.id WHERE t.id = ANY($1)",
        )
        .bind::<Array<BigInt>, _>(ids)
        .get_result(self.db.conn())?;
        let seconds = span.seconds.unwrap_or(0.0);
        Ok(if seconds > 0.0 {
            ids.len() as f64 / seconds
        } else {
            0.0
        })
    }

    /// How many of `ids` are not finished yet.
    pub fn unfinished_among(&mut self, ids: &[i64]) -> anyhow::Result<i64> {
        let row: Count = diesel::sql_query(
            "SELECT count(*) AS n FROM tasks WHERE id = ANY($1) AND status IN ('PENDING', 'RUNNING')",
        )
        .bind::<Array<BigInt>, _>(ids)
        .get_result(self.db.conn())?;
        Ok(row.n)
    }

    /// Rows in `tasks`.
    pub fn count_tasks(&mut self) -> anyhow::Result<i64> {
        self.count("SELECT count(*) AS n FROM tasks")
    }

    fn count(&mut self, sql: &str) -> anyhow::Result<i64> {
        Ok(diesel::sql_query(sql).get_result::<Count>(self.db.conn())?.n)
    }
}
