//! Single submissions (`POST /tasks`) share inserts (group commit): every request
//! still gets its own answer, but requests arriving together share one insert and one WAL
//! flush, so submission throughput is not capped at one commit per task.

use std::collections::HashSet;

use service_runtime::PgPool;

use crate::domain::NewTask;
use crate::store::group_commit::{write_together_or_one_by_one, GroupCommit, GroupWrite};
use crate::store::tasks::{self as task_store, Inserted};
use crate::store::StoreError;

/// Most submissions inserted in one statement.
pub const MAX_SUBMISSION_GROUP: usize = 500;

/// The handle `POST /tasks` submits through. Cheap to clone.
#[derive(Clone)]
pub struct TaskSubmitter {
    writer: GroupCommit<NewTask, Inserted>,
}

impl TaskSubmitter {
    /// Starts the writer on the current runtime.
    pub fn start(pool: PgPool) -> Self {
        let writer = GroupCommit::start("task submitter", MAX_SUBMISSION_GROUP, move |tasks| {
            write_submissions(pool.clone(), tasks)
        });
        Self { writer }
    }

    /// Inserts `task` with the submissions waiting beside it: the new row, or the existing
    /// task its idempotency key names.
    pub async fn submit(&self, task: NewTask) -> Result<Inserted, StoreError> {
        self.writer.submit(task).await
    }
}

fn write_submissions(pool: PgPool, tasks: Vec<NewTask>) -> GroupWrite<Inserted> {
    Box::pin(async move {
        let mut answers: Vec<Option<Result<Inserted, StoreError>>> = tasks.iter().map(|_| None).collect();
        let mut left: Vec<usize> = (0..tasks.len()).collect();
        while !left.is_empty() {
            // One insert holds each idempotency key once: a repeat waits for the next round,
            // where it finds the task the first one made.
            let mut keys = HashSet::new();
            let (round, later): (Vec<usize>, Vec<usize>) = left.into_iter().partition(|&i| {
                tasks[i]
                    .idempotency_key
                    .as_ref()
                    .is_none_or(|key| keys.insert(key.clone()))
            });
            for (i, answer) in round.iter().zip(insert_round(&pool, &tasks, &round).await) {
                answers[*i] = Some(answer);
            }
            left = later;
        }
        answers
            .into_iter()
            .map(|a| a.unwrap_or_else(|| Err(StoreError::CorruptRow("a submission was not answered".into()))))
            .collect()
    })
}

/// Inserts the submissions at `indexes` together (see `insert_each_task`).
async fn insert_round(
    pool: &PgPool,
    tasks: &[NewTask],
    indexes: &[usize],
) -> Vec<Result<Inserted, StoreError>> {
    let round: Vec<NewTask> = indexes.iter().map(|&i| tasks[i].clone()).collect();
    write_together_or_one_by_one(pool, round, task_store::insert_each_task).await
}
