//! The hot path's statements planned by `EXPLAIN` instead of run, so that a test can check
//! they read indexes, not whole tables, however much history the tables hold.

use diesel::connection::SimpleConnection;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use diesel::row::NamedRow;
use diesel::sql_types::Text;
use dtp_contract::{RetryState, TaskStatus};
use std::time::Duration;

use super::attempt_ends::{finish_attempts_statement, AttemptEndColumns};
use super::claims::{
    claim_statement, expired_leases_statement, extend_leases_statement, type_claim_statement, TypeClaim,
    CLAIM_CONNECTION_SETTINGS, CLAIM_SQL,
};
use super::listing::listing_statement;
use super::rows::delete_finished_statement;
use super::{AttemptEnd, LeaseGuard, TaskFilter};
use crate::domain::{AttemptOutcome, TaskState};

/// Whether a hot-path statement is run, or only planned by `EXPLAIN` (the plan checks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Planning {
    Run,
    Explain,
}

impl Planning {
    pub(super) fn statement(self, sql: &str) -> BoxedSqlQuery<'static, Pg, SqlQuery> {
        let prefix = match self {
            Planning::Run => "",
            Planning::Explain => "EXPLAIN ",
        };
        diesel::sql_query(format!("{prefix}{sql}")).into_boxed()
    }
}

/// One line of an `EXPLAIN` answer.
pub(crate) struct PlanLine(String);

/// An `EXPLAIN` answer's lines as one text.
pub(crate) fn plan(lines: Vec<PlanLine>) -> String {
    lines.into_iter().map(|l| l.0).collect::<Vec<_>>().join("\n")
}

impl QueryableByName<Pg> for PlanLine {
    fn build<'a>(row: &impl NamedRow<'a, Pg>) -> diesel::deserialize::Result<Self> {
        Ok(Self(NamedRow::get::<Text, String>(row, "QUERY PLAN")?))
    }
}

/// The plans Postgres picks for the statements every task goes through (claim of the shared
/// queue and of a type's own, completion by the engine and by a worker, lease extension,
/// rescue), by name: what the "no sequential scan on the hot path" check reads.
pub fn explain_hot_path(conn: &mut PgConnection) -> QueryResult<Vec<(&'static str, String)>> {
    let ends: Vec<AttemptEnd> = (1..=100)
        .map(|i| AttemptEnd {
            task_id: i,
            lease_token: i,
            next: TaskState::new(TaskStatus::Succeeded, RetryState::Completed),
            outcome: AttemptOutcome::Succeeded,
            error: None,
            retry_in: None,
            result: None,
            lease_secret: None,
        })
        .collect();
    let columns = AttemptEndColumns::of(&ends);
    let worker_ends: Vec<AttemptEnd> = ends
        .iter()
        .map(|end| AttemptEnd {
            lease_secret: Some([7; crate::domain::lease::LEASE_SECRET_BYTES]),
            ..end.clone()
        })
        .collect();
    let worker_columns = AttemptEndColumns::of(&worker_ends);
    let tokens: Vec<i64> = (1..=100).collect();
    let lease = Duration::from_secs(30);
    Ok(vec![
        (
            "claim_due_tasks",
            plan(
                claim_statement(Planning::Explain, "plan-check", 100, lease, TaskStatus::Running)
                    .load(conn)?,
            ),
        ),
        (
            "claim_due_tasks_of_type",
            plan(
                type_claim_statement(
                    Planning::Explain,
                    TypeClaim {
                        task_type: "limited",
                        concurrency: Some(5),
                    },
                    "plan-check",
                    100,
                    lease,
                    TaskStatus::Running,
                )
                .load(conn)?,
            ),
        ),
        (
            "finish_attempts",
            plan(finish_attempts_statement(Planning::Explain, &columns, LeaseGuard::Held).load(conn)?),
        ),
        (
            "finish_attempts of workers",
            plan(
                finish_attempts_statement(Planning::Explain, &worker_columns, LeaseGuard::Worker)
                    .load(conn)?,
            ),
        ),
        (
            "extend_leases",
            plan(extend_leases_statement(Planning::Explain, &tokens, lease).load(conn)?),
        ),
        (
            "find_expired_leases",
            plan(expired_leases_statement(Planning::Explain, 100).load(conn)?),
        ),
    ])
}

/// The plans of `GET /tasks` for each kind of filter (`task_type` the type filtered on), by
/// the filter's query string.
pub fn explain_listings(conn: &mut PgConnection, task_type: &str) -> QueryResult<Vec<(String, String)>> {
    let statuses = std::iter::once(None).chain(TaskStatus::ALL.map(Some));
    let mut plans = Vec::new();
    for status in statuses {
        for filtered_type in [None, Some(task_type)] {
            let filter = TaskFilter {
                status,
                task_type: filtered_type.map(str::to_owned),
                before_id: Some(i64::MAX / 2),
            };
            let query = format!(
                "status={} type={}",
                status.map_or("-", |s| s.as_str()),
                filtered_type.unwrap_or("-")
            );
            plans.push((
                query,
                plan(listing_statement(Planning::Explain, &filter, 21).load(conn)?),
            ));
        }
    }
    Ok(plans)
}

/// The plans of the cleaner's deletion of finished tasks, by status deleted.
pub fn explain_cleanup(conn: &mut PgConnection, task_type: &str) -> QueryResult<Vec<(String, String)>> {
    TaskStatus::ALL
        .into_iter()
        .filter(|status| status.is_terminal())
        .map(|status| {
            let lines = delete_finished_statement(Planning::Explain)
                .bind::<Text, _>(status.as_str())
                .bind::<diesel::sql_types::Timestamptz, _>(chrono::Utc::now())
                .bind::<diesel::sql_types::BigInt, _>(250_i64)
                .bind::<Text, _>(task_type.to_owned())
                .bind::<diesel::sql_types::BigInt, _>(0_i64)
                .load(conn)?;
            Ok((format!("delete_finished_tasks {}", status.as_str()), plan(lines)))
        })
        .collect()
}

/// The plan the claim loop's own connection runs the claim with: the generic one, made
/// without the parameters' values (see `CLAIM_CONNECTION_SETTINGS`). Leaves `conn` as it was.
pub fn explain_claim_as_claim_loop(conn: &mut PgConnection) -> QueryResult<String> {
    conn.batch_execute(&format!(
        "{CLAIM_CONNECTION_SETTINGS}; PREPARE plan_check_claim (bigint, bigint, text, text) AS {CLAIM_SQL}"
    ))?;
    let lines = diesel::sql_query("EXPLAIN EXECUTE plan_check_claim (100, 30000, 'plan-check', 'RUNNING')")
        .load(conn);
    conn.batch_execute("DEALLOCATE plan_check_claim; RESET plan_cache_mode; RESET enable_seqscan")?;
    Ok(plan(lines?))
}
