//! Single submissions (`POST /tasks`) share inserts (group commit): every request
//! still gets its own answer, but requests arriving together share one insert and one WAL
//! flush, so submission throughput is not capped at one commit per task.

use service_runtime::group_commit::{write_in_rounds_by_key, GroupCommit, GroupWrite};
use service_runtime::PgPool;

use crate::domain::NewTask;
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
    // One insert holds each idempotency key once: a repeat waits for the next round, where it
    // finds the task the first one made.
    Box::pin(async move {
        write_in_rounds_by_key(
            &pool,
            tasks,
            |t| t.idempotency_key.clone(),
            task_store::insert_each_task,
        )
        .await
    })
}
