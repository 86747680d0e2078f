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

/// Most attempt ends written in one statement, and the bytes of results and errors they
/// carry: a thousand results of 64 KiB would make one statement of 64 MiB, and leave its
/// connection holding buffers of that size.
const ENDS_GROUP: GroupSize<AttemptEnd> = GroupSize {
    items: 1_000,
    bytes: DEFAULT_GROUP_BYTES,
    bytes_of: end_bytes,
};

/// What an attempt's end carries into the statement beyond its fixed columns.
fn end_bytes(end: &AttemptEnd) -> usize {
    end.result.as_ref().map_or(0, dtp_contract::json_size) + end.error.as_ref().map_or(0, String::len)
}

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
                ENDS_GROUP,
                pool.clone(),
                finish_engine_attempts,
            ),
            worker_ends: GroupCommit::start_statements(
                "worker completer",
                ENDS_GROUP,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{AttemptOutcome, TaskState};
    use dtp_contract::{RetryState, TaskStatus};

    fn end(result: Option<serde_json::Value>, error: Option<&str>) -> AttemptEnd {
        AttemptEnd {
            task_id: 1,
            lease_token: 1,
            next: TaskState::new(TaskStatus::Succeeded, RetryState::Completed),
            outcome: AttemptOutcome::Succeeded,
            error: error.map(str::to_owned),
            retry_in: None,
            result,
            lease_secret: None,
        }
    }

    #[test]
    fn an_end_weighs_what_its_result_and_error_carry() {
        assert_eq!(end_bytes(&end(None, None)), 0);
        assert_eq!(end_bytes(&end(Some(serde_json::json!({"k": "vv"})), None)), 10);
        assert_eq!(end_bytes(&end(None, Some("boom"))), 4);
        let big = serde_json::json!({"blob": "x".repeat(64 * 1024 - 12)});
        // Sixty-four results of 64 KiB fit in one group; a sixty-fifth does not.
        assert!(64 * end_bytes(&end(Some(big.clone()), None)) <= ENDS_GROUP.bytes);
        assert!(65 * end_bytes(&end(Some(big), None)) > ENDS_GROUP.bytes);
    }
}
