//! The statements `Tasks` groups: single reads, single submissions and attempt ends arriving
//! together share one statement (group commit), so under load one round trip and one WAL
//! flush serve many callers, and an idle caller waits for no timer.

use std::collections::HashSet;

use diesel::{PgConnection, QueryResult};
use service_postgres::group_commit::{GroupCommit, GroupSize, DEFAULT_GROUP_BYTES};
use service_postgres::PgPool;

use super::{find_tasks, finish_attempts, insert_each_task, AttemptEnd, Inserted, LeaseGuard, TaskRow};
use crate::domain::NewTask;

/// Most tasks read, or submissions inserted, in one statement.
const MAX_GROUP: usize = 500;

/// Most attempt ends written in one statement.
const MAX_ENDS_GROUP: usize = 1_000;

#[derive(Clone)]
pub(super) struct Groups {
    pub(super) reads: GroupCommit<i64, Option<TaskRow>>,
    pub(super) submissions: GroupCommit<NewTask, Inserted>,
    pub(super) engine_ends: GroupCommit<AttemptEnd, bool>,
    pub(super) worker_ends: GroupCommit<AttemptEnd, bool>,
}

impl Groups {
    pub(super) fn start(pool: &PgPool) -> Self {
        // One insert holds each idempotency key once: a repeat waits for the next round,
        // where it finds the task the first one made.
        let submissions = GroupCommit::start_keyed_statements(
            "task submitter",
            GroupSize::weighed(MAX_GROUP, DEFAULT_GROUP_BYTES, |task: &NewTask| {
                dtp_contract::json_size(&task.payload)
            }),
            pool.clone(),
            |task: &NewTask| {
                task.idempotency_key
                    .clone()
                    .map(|key| (task.idempotency_scope.clone(), key))
            },
            insert_each_task,
        );
        Self {
            reads: GroupCommit::start_statements("task reader", MAX_GROUP, pool.clone(), find_tasks),
            submissions,
            engine_ends: GroupCommit::start_statements(
                "attempt completer",
                MAX_ENDS_GROUP,
                pool.clone(),
                finish_engine_attempts,
            ),
            worker_ends: GroupCommit::start_statements(
                "worker completer",
                MAX_ENDS_GROUP,
                pool.clone(),
                finish_leased_attempts,
            ),
        }
    }
}

fn finish_engine_attempts(conn: &mut PgConnection, ends: &[AttemptEnd]) -> QueryResult<Vec<bool>> {
    finish_guarded(conn, ends, LeaseGuard::Held)
}

fn finish_leased_attempts(conn: &mut PgConnection, ends: &[AttemptEnd]) -> QueryResult<Vec<bool>> {
    finish_guarded(conn, ends, LeaseGuard::Worker)
}

/// Ends every attempt of `ends` in one statement; answers, for each in order, whether it
/// still held its task.
fn finish_guarded(conn: &mut PgConnection, ends: &[AttemptEnd], guard: LeaseGuard) -> QueryResult<Vec<bool>> {
    let held: HashSet<i64> = finish_attempts(conn, ends, guard)?.into_iter().collect();
    Ok(ends.iter().map(|e| held.contains(&e.lease_token)).collect())
}
