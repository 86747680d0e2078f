//! Reads, creates and binds of single web tasks share statements (group commit): requests
//! arriving together share one select, insert or update (and one WAL flush); each still gets
//! its own answer, and an idle caller waits for no timer. The control plane's cost under load
//! was per statement, not in any one of them.

use service_runtime::group_commit::{GroupCommit, GroupSize, DEFAULT_GROUP_BYTES};
use service_runtime::PgPool;

use crate::domain::binding::Binding;
use crate::domain::{ExecutionRecord, NewWebTask};
use crate::store::web_tasks::{
    self as web_task_store, BindingWithExecution, BindingWritten, WebTaskRow, WebTaskWithExecution,
};
use crate::store::StoreError;

/// Most web tasks read, created or bound in one statement.
pub const MAX_GROUP: usize = 500;

/// The handle the routes read, create and bind single web tasks through. Cheap to clone.
#[derive(Clone)]
pub struct GroupedWebTasks {
    reads: GroupCommit<i64, Option<WebTaskWithExecution>>,
    creates: GroupCommit<NewWebTask, WebTaskRow>,
    binds: GroupCommit<BindingWithExecution, Option<BindingWritten>>,
}

impl GroupedWebTasks {
    /// Starts the reader and both writers on the current runtime.
    pub fn start(pool: PgPool) -> Self {
        let reads = GroupCommit::start_statements(
            "web task reader",
            MAX_GROUP,
            pool.clone(),
            web_task_store::find_web_tasks,
        );
        let creates = GroupCommit::start_statements(
            "web task creator",
            GroupSize::weighed(MAX_GROUP, DEFAULT_GROUP_BYTES, |task: &NewWebTask| {
                dtp_contract::json_size(&task.payload)
            }),
            pool.clone(),
            web_task_store::insert_web_tasks,
        );
        // One update writes a web task once: a second bind of it waits for the next round,
        // where it finds the first one's binding and is told it lost.
        let binds = GroupCommit::start_keyed_statements(
            "web task binder",
            MAX_GROUP,
            pool,
            |(id, _, _): &BindingWithExecution| Some(*id),
            web_task_store::bind_each_if_unbound,
        );
        Self {
            reads,
            creates,
            binds,
        }
    }

    /// Reads web task `id`, with its mirrored execution.
    pub async fn find(&self, id: i64) -> Result<Option<WebTaskWithExecution>, StoreError> {
        self.reads.submit(id).await
    }

    /// Inserts a new, unbound web task.
    pub async fn create(&self, task: NewWebTask) -> Result<WebTaskRow, StoreError> {
        self.creates.submit(task).await
    }

    /// Records the binding if web task `id` is still unbound, with the execution the scheduler
    /// reported: what it changed, or `None` when another bind won.
    pub async fn bind_if_unbound(
        &self,
        id: i64,
        binding: Binding,
        execution: ExecutionRecord,
    ) -> Result<Option<BindingWritten>, StoreError> {
        self.binds.submit((id, binding, execution)).await
    }
}
