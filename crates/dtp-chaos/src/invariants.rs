//! The invariants a run must leave behind, checked from the engine's own tables.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Int4, Nullable, Text, Timestamptz};

#[derive(QueryableByName)]
struct TaskFacts {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Nullable<Text>)]
    idempotency_key: Option<String>,
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = Int4)]
    attempt_count: i32,
    #[diesel(sql_type = Int4)]
    max_attempts: i32,
    #[diesel(sql_type = Nullable<Text>)]
    last_error: Option<String>,
}

#[derive(QueryableByName, Clone)]
pub struct AttemptFacts {
    #[diesel(sql_type = BigInt)]
    pub task_id: i64,
    #[diesel(sql_type = Text)]
    pub worker_id: String,
    #[diesel(sql_type = Timestamptz)]
    pub started_at: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub finished_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Text>)]
    pub outcome: Option<String>,
}

/// What the tables say after a run.
#[derive(Debug, Default)]
pub struct Report {
    pub tasks: usize,
    pub lost: usize,
    pub duplicated: usize,
    pub stuck: usize,
    pub violations: Vec<String>,
}

/// Checks every submitted key `key_prefix{0..expected}` against the tables.
pub fn check(
    conn: &mut PgConnection,
    key_prefix: &str,
    expected: usize,
) -> anyhow::Result<(Report, Vec<AttemptFacts>)> {
    let tasks: Vec<TaskFacts> = diesel::sql_query(
        "SELECT id, idempotency_key, status, attempt_count, max_attempts, last_error FROM tasks ORDER BY id",
    )
    .load(conn)?;
    let attempts: Vec<AttemptFacts> = diesel::sql_query(
        "SELECT task_id, worker_id, started_at, finished_at, outcome FROM task_attempts ORDER BY task_id, started_at",
    )
    .load(conn)?;

    let mut report = Report {
        tasks: tasks.len(),
        ..Report::default()
    };
    let keys: HashSet<&str> = tasks
        .iter()
        .filter_map(|t| t.idempotency_key.as_deref())
        .collect();
    report.duplicated = tasks.len() - keys.len();
    report.lost = (0..expected)
        .filter(|i| !keys.contains(format!("{key_prefix}{i}").as_str()))
        .count();

    let mut by_task: BTreeMap<i64, Vec<&AttemptFacts>> = BTreeMap::new();
    for attempt in &attempts {
        by_task.entry(attempt.task_id).or_default().push(attempt);
    }
    for task in &tasks {
        let history = by_task.get(&task.id).map(Vec::as_slice).unwrap_or_default();
        if !matches!(task.status.as_str(), "SUCCEEDED" | "FAILED" | "CANCELED") {
            report.stuck += 1;
            continue;
        }
        if task.status != "SUCCEEDED" {
            report.violations.push(format!(
                "task {} should have succeeded but is {} after {} attempts: {}",
                task.id,
                task.status,
                task.attempt_count,
                task.last_error.as_deref().unwrap_or("-")
            ));
        }
        if task.attempt_count > task.max_attempts {
            report.violations.push(format!(
                "task {} has {} attempts > max {}",
                task.id, task.attempt_count, task.max_attempts
            ));
        }
        let counted = history
            .iter()
            .filter(|a| a.outcome.as_deref() != Some("RELEASED"))
            .count();
        if counted != usize::try_from(task.attempt_count).unwrap_or(0) {
            report.violations.push(format!(
                "task {}: attempt_count {} but {} counted attempt rows",
                task.id, task.attempt_count, counted
            ));
        }
        let successes = history
            .iter()
            .filter(|a| a.outcome.as_deref() == Some("SUCCEEDED"))
            .count();
        if task.status == "SUCCEEDED" && successes != 1 {
            report
                .violations
                .push(format!("task {} succeeded {successes} times", task.id));
        }
        for pair in history.windows(2) {
            match pair[0].finished_at {
                None => report
                    .violations
                    .push(format!("task {}: an attempt never finished", task.id)),
                Some(end) if end > pair[1].started_at => report.violations.push(format!(
                    "task {}: attempts overlap ({} on {} until {end}, next started {} on {})",
                    task.id, pair[0].started_at, pair[0].worker_id, pair[1].started_at, pair[1].worker_id
                )),
                Some(_) => {}
            }
        }
        if history.last().is_some_and(|a| a.finished_at.is_none()) {
            report
                .violations
                .push(format!("task {}: its last attempt never finished", task.id));
        }
    }
    Ok((report, attempts))
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Runs a `SELECT count(*) AS n ...` statement.
pub fn count(conn: &mut PgConnection, sql: &str) -> anyhow::Result<i64> {
    Ok(diesel::sql_query(sql).get_result::<Count>(conn)?.n)
}

/// A scheduler task's state: (id, status, retry state, attempts).
type TaskState = (i64, String, String, i32);

fn states(conn: &mut PgConnection, sql: &str) -> anyhow::Result<Vec<TaskState>> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        id: i64,
        #[diesel(sql_type = diesel::sql_types::Text)]
        status: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        retry_state: String,
        #[diesel(sql_type = diesel::sql_types::Integer)]
        attempt_count: i32,
    }
    Ok(diesel::sql_query(sql)
        .load::<Row>(conn)?
        .into_iter()
        .map(|r| (r.id, r.status, r.retry_state, r.attempt_count))
        .collect())
}

/// How TaskPilot's mirror differs from the engines' tasks: tasks whose mirrored state is
/// not theirs (or is missing), and the events applied minus the events written (0 when each
/// was applied exactly once).
pub fn mirror_differences(dtp: &mut PgConnection, web: &mut PgConnection) -> anyhow::Result<(usize, i64)> {
    let truth = states(
        dtp,
        "SELECT id, status, retry_state, attempt_count FROM tasks ORDER BY id",
    )?;
    let mirror = states(
        web,
        "SELECT scheduler_task_id AS id, status, retry_state, attempt_count FROM task_executions ORDER BY 1",
    )?;
    let mirrored: std::collections::HashMap<i64, &TaskState> = mirror.iter().map(|s| (s.0, s)).collect();
    let differing = truth.iter().filter(|t| mirrored.get(&t.0) != Some(t)).count()
        + mirror.len().saturating_sub(truth.len());
    let written = count(dtp, "SELECT count(*) AS n FROM task_events")?;
    let applied = count(web, "SELECT count(*) AS n FROM execution_events")?;
    Ok((differing, applied - written))
}
