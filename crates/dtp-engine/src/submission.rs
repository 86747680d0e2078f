//! Single submissions (`POST /tasks`) share inserts (group commit): every request
//! still gets its own answer, but requests arriving together share one insert and one WAL
//! flush, so submission throughput is not capped at one commit per task.

use service_runtime::group_commit::{GroupCommit, GroupSize, DEFAULT_GROUP_BYTES};
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
        // One insert holds each idempotency key once: a repeat waits for the next round,
        // where it finds the task the first one made.
        let writer = GroupCommit::start_keyed_statements(
            "task submitter",
            GroupSize::weighed(MAX_SUBMISSION_GROUP, DEFAULT_GROUP_BYTES, |task: &NewTask| {
                dtp_contract::json_size(&task.payload)
            }),
            pool,
            |task: &NewTask| {
                task.idempotency_key
                    .clone()
                    .map(|key| (task.idempotency_scope.clone(), key))
            },
            task_store::insert_each_task,
        );
        Self { writer }
    }

    /// Inserts `task` with the submissions waiting beside it: the new row, or the existing
    /// task its idempotency key names.
    pub async fn submit(&self, task: NewTask) -> Result<Inserted, StoreError> {
        self.writer.submit(task).await
    }
}
