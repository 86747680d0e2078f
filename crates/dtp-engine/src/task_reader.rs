//! Single reads of a task (`GET /tasks/{id}`) arriving together share one statement, as
//! submissions share inserts: under load one round trip serves many requests, and an idle
//! caller waits for no timer.

use service_runtime::group_commit::GroupCommit;
use service_runtime::PgPool;

use crate::store::tasks::{self as task_store, TaskRow};
use crate::store::StoreError;

/// Most tasks read in one statement.
pub const MAX_READ_GROUP: usize = 500;

/// The handle `GET /tasks/{id}` reads through. Cheap to clone.
#[derive(Clone)]
pub struct TaskReader {
    reads: GroupCommit<i64, Option<TaskRow>>,
}

impl TaskReader {
    /// Starts the reader on the current runtime.
    pub fn start(pool: PgPool) -> Self {
        Self {
            reads: GroupCommit::start_statements("task reader", MAX_READ_GROUP, pool, task_store::find_tasks),
        }
    }

    /// Reads task `id`.
    pub async fn find(&self, id: i64) -> Result<Option<TaskRow>, StoreError> {
        self.reads.submit(id).await
    }
}
