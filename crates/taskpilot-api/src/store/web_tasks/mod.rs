//! The `web_tasks` table. `WebTasks` is what the rest of TaskPilot calls: find, create,
//! bind, list. Single reads, creates and binds arriving together share one statement (group
//! commit: one round trip and one WAL flush for many requests, no timer for an idle one);
//! that grouping is its own business. The statements are in `rows.rs`.

mod rows;

use service_postgres::group_commit::{GroupCommit, GroupSize, DEFAULT_GROUP_BYTES};
use service_postgres::PgPool;

pub use rows::{
    bind_each_if_unbound, find_web_tasks, insert_web_tasks, list_web_tasks, BindingWithExecution,
    BindingWritten, WebTaskFilter, WebTaskRow, WebTaskWithExecution,
};

use super::{run, StoreError};
use crate::domain::binding::Binding;
use crate::domain::{ExecutionRecord, NewWebTask};

/// Most web tasks read, created or bound in one statement.
const MAX_GROUP: usize = 500;

/// TaskPilot's handle on its web tasks. Cheap to clone; every clone shares the same groups.
#[derive(Clone)]
pub struct WebTasks {
    pool: PgPool,
    reads: GroupCommit<i64, Option<WebTaskWithExecution>>,
    creates: GroupCommit<NewWebTask, WebTaskRow>,
    binds: GroupCommit<BindingWithExecution, Option<BindingWritten>>,
}

impl WebTasks {
    /// Starts the grouped statements on the current runtime.
    pub fn start(pool: PgPool) -> Self {
        let reads = GroupCommit::start_statements("web task reader", MAX_GROUP, pool.clone(), find_web_tasks);
        let creates = GroupCommit::start_statements(
            "web task creator",
            GroupSize::weighed(MAX_GROUP, DEFAULT_GROUP_BYTES, |task: &NewWebTask| {
                dtp_contract::json_size(&task.payload)
            }),
            pool.clone(),
            insert_web_tasks,
        );
        // One update writes a web task once: a second bind of it waits for the next round,
        // where it finds the first one's binding and is told it lost.
        let binds = GroupCommit::start_keyed_statements(
            "web task binder",
            MAX_GROUP,
            pool.clone(),
            |(id, _, _): &BindingWithExecution| Some(*id),
            bind_each_if_unbound,
        );
        Self {
            pool,
            reads,
            creates,
            binds,
        }
    }

    /// Web task `id`, with its mirrored execution.
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

    /// Up to `rows` web tasks that `filter` selects, newest first, each with its execution.
    pub async fn list(
        &self,
        filter: WebTaskFilter,
        rows: i64,
    ) -> Result<Vec<WebTaskWithExecution>, StoreError> {
        run(&self.pool, move |conn| list_web_tasks(conn, &filter, rows)).await
    }
}
