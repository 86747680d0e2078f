//! The link between a web task and its scheduler task: binding it exactly once, reading its
//! execution, forwarding a cancel. The use cases behind `/api/tasks/{id}/scheduler`,
//! `/execution` and `/execution/cancel`, and the dashboard's buttons; `http/` maps `LinkError`.

use chrono::{DateTime, Utc};
use dtp_contract::CreateTaskRequest;
use service_http::request_trace::RequestContext;

use crate::domain::binding::{idempotency_key, Binding};
use crate::domain::web_task::validate_scheduler_type;
use crate::domain::WebTaskValidationError;
use crate::domain::{decide_bind, execution_view, BindDecision, ExecutionRecord, ExecutionView};
use crate::scheduler_client::{SchedulerClient, SchedulerError};
use crate::store::task_executions::ExecutionRow;
use crate::store::web_tasks::WebTasks;
use crate::store::web_tasks::{WebTaskRow, WebTaskWithExecution};
use crate::store::StoreError;

/// The scheduler call an error came from, which decides how it is answered.
#[derive(Debug, Clone, Copy)]
pub enum SchedulerCall {
    /// Creating the scheduler task for a bind: a 422 is the caller's to fix, passed through.
    Bind,
    /// Reading or canceling the bound scheduler task.
    BoundTask {
        web_task_id: i64,
        scheduler_task_id: i64,
    },
}

/// Why a bind, an execution read or a cancel was not done.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error(transparent)]
    Invalid(#[from] WebTaskValidationError),
    /// No such web task, or one of another tenant (the same to the caller).
    #[error("web task {0} not found")]
    WebTaskNotFound(i64),
    #[error("web task {0} is not bound to a scheduler task")]
    NotBound(i64),
    #[error("web task {web_task_id} is already bound to scheduler task {scheduler_task_id} of type {scheduler_type:?}")]
    AlreadyBound {
        web_task_id: i64,
        scheduler_task_id: i64,
        scheduler_type: String,
    },
    #[error("{source}")]
    Scheduler {
        source: SchedulerError,
        call: SchedulerCall,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A mirrored execution and when TaskPilot last heard of it.
pub type SyncedExecution = (ExecutionRecord, DateTime<Utc>);

/// What a bind did: the web task as it now is, and whether this call bound it.
pub struct Bound {
    pub task: WebTaskRow,
    pub execution: Option<SyncedExecution>,
    pub newly_bound: bool,
}

/// The use cases' handle: TaskPilot's web tasks and the scheduler. Cheap to clone.
#[derive(Clone)]
pub struct ExecutionLinks {
    web_tasks: WebTasks,
    scheduler: SchedulerClient,
    /// Test-only fault point: exit right after the scheduler answered a bind, before our commit.
    crash_after_scheduler_create: bool,
}

impl ExecutionLinks {
    pub fn new(web_tasks: WebTasks, scheduler: SchedulerClient, crash_after_scheduler_create: bool) -> Self {
        Self {
            web_tasks,
            scheduler,
            crash_after_scheduler_create,
        }
    }

    /// Web task `id` with its mirrored execution if it is `tenant`'s; another tenant's is
    /// answered as one that does not exist.
    pub async fn owned(&self, tenant: &str, id: i64) -> Result<WebTaskWithExecution, LinkError> {
        self.web_tasks
            .find(id)
            .await?
            .filter(|(row, _)| row.tenant == tenant)
            .ok_or(LinkError::WebTaskNotFound(id))
    }

    /// Binds web task `id` to a new scheduler task of type `requested`, exactly once, without
    /// a lock held across the scheduler call: the scheduler task is created under an
    /// idempotency key derived from the web task id, and the link is written only if the web
    /// task is still unbound.
    pub async fn bind(
        &self,
        tenant: &str,
        id: i64,
        requested: String,
        context: &RequestContext,
    ) -> Result<Bound, LinkError> {
        validate_scheduler_type(&requested)?;
        let stored = self.owned(tenant, id).await?;
        let decision = decide_bind(stored.0.binding(), &requested);
        if decision != BindDecision::CreateSchedulerTask {
            return answer_bind(decision, stored);
        }
        let (mut row, _) = stored;

        // The payload travels in the submission and comes back out of it for the answer: a
        // large one is held once, not copied.
        let mut request = CreateTaskRequest {
            task_type: requested.clone(),
            payload: serde_json::json!({"webTaskId": row.id, "type": row.task_type, "payload": row.payload.take()}),
            max_attempts: None,
            idempotency_key: Some(idempotency_key(id)),
            run_at: None,
            timeout_ms: None,
        };
        let created = match self.scheduler.create_task(&request, context).await {
            Ok(created) => created,
            Err(source) => {
                // A concurrent bind with another type may have won at the scheduler: say so plainly.
                let current = self.owned(tenant, id).await?;
                let decision = decide_bind(current.0.binding(), &requested);
                if let BindDecision::Conflict(_) = decision {
                    return answer_bind(decision, current);
                }
                return Err(LinkError::Scheduler {
                    source,
                    call: SchedulerCall::Bind,
                });
            }
        };
        tracing::info!(
            web_task.id = id,
            task.id = created.task.id,
            newly_created = created.newly_created,
            "scheduler task ready"
        );
        if self.crash_after_scheduler_create {
            tracing::error!(
                web_task.id = id,
                "fault injection: exiting between the scheduler's answer and our commit"
            );
            std::process::exit(86);
        }
        if created.task.task_type != requested {
            return Err(LinkError::AlreadyBound {
                web_task_id: id,
                scheduler_task_id: created.task.id,
                scheduler_type: created.task.task_type,
            });
        }

        let binding = Binding {
            scheduler_task_id: created.task.id,
            scheduler_type: requested.clone(),
        };
        let execution = ExecutionRecord::of_task(&created.task);
        let synced = (execution.clone(), Utc::now());
        match self.web_tasks.bind_if_unbound(id, binding, execution).await? {
            Some(written) => {
                tracing::info!(web_task.id = id, task.id = created.task.id, "web task bound");
                row.payload = request.payload["payload"].take();
                Ok(Bound {
                    task: row.with_binding(written),
                    execution: Some(synced),
                    newly_bound: true,
                })
            }
            // A concurrent bind committed first; answer from what it wrote.
            None => {
                let current = self.owned(tenant, id).await?;
                let decision = decide_bind(current.0.binding(), &requested);
                answer_bind(decision, current)
            }
        }
    }

    /// The scheduler's view of web task `id`'s execution (with its attempts if asked), or the
    /// archived copy once the scheduler has deleted the finished task.
    pub async fn execution(
        &self,
        tenant: &str,
        id: i64,
        with_attempts: bool,
        context: &RequestContext,
    ) -> Result<ExecutionView, LinkError> {
        let (binding, mirrored) = self.bound_task(tenant, id).await?;
        let call = SchedulerCall::BoundTask {
            web_task_id: id,
            scheduler_task_id: binding.scheduler_task_id,
        };
        let scheduler_call = |source| LinkError::Scheduler { source, call };
        let task = match self.scheduler.get_task(binding.scheduler_task_id, context).await {
            Ok(task) => task,
            // Deleted under retention once finished: TaskPilot's last copy answers instead.
            Err(SchedulerError::NotFound { .. })
                if let Some(archived) = archived_view(mirrored.as_ref())? =>
            {
                return Ok(archived);
            }
            Err(e) => return Err(scheduler_call(e)),
        };
        let mut view = execution_view(&task);
        if with_attempts {
            // Read after the task, so that every attempt the task counts is in the list, closed
            // if the task has moved on from it (an attempt ends in the same write as its task).
            let attempts = self
                .scheduler
                .get_attempts(binding.scheduler_task_id, context)
                .await
                .map_err(scheduler_call)?;
            view = view.with_attempts(&attempts);
        }
        Ok(view)
    }

    /// Forwards the cancel of web task `id`'s execution; `Ok` once it is CANCELED.
    pub async fn cancel(&self, tenant: &str, id: i64, context: &RequestContext) -> Result<(), LinkError> {
        let (binding, _) = self.bound_task(tenant, id).await?;
        let call = SchedulerCall::BoundTask {
            web_task_id: id,
            scheduler_task_id: binding.scheduler_task_id,
        };
        self.scheduler
            .cancel_task(binding.scheduler_task_id, context)
            .await
            .map_err(|source| LinkError::Scheduler { source, call })?;
        tracing::info!(
            web_task.id = id,
            task.id = binding.scheduler_task_id,
            "execution canceled"
        );
        Ok(())
    }

    /// Web task `id`'s binding and mirrored execution, or not found / not bound.
    async fn bound_task(&self, tenant: &str, id: i64) -> Result<(Binding, Option<ExecutionRow>), LinkError> {
        let (row, execution) = self.owned(tenant, id).await?;
        let binding = row.binding().ok_or(LinkError::NotBound(id))?;
        Ok((binding, execution))
    }
}

/// The answer to a bind that wrote nothing: the task as stored, or the conflict.
fn answer_bind(decision: BindDecision, (row, execution): WebTaskWithExecution) -> Result<Bound, LinkError> {
    match decision {
        BindDecision::Conflict(binding) => Err(LinkError::AlreadyBound {
            web_task_id: row.id,
            scheduler_task_id: binding.scheduler_task_id,
            scheduler_type: binding.scheduler_type,
        }),
        _ => Ok(Bound {
            execution: execution
                .map(|e| Ok::<_, StoreError>((e.record()?, e.synced_at)))
                .transpose()?,
            task: row,
            newly_bound: false,
        }),
    }
}

/// The archived view from a mirrored execution that had finished, if any.
fn archived_view(mirrored: Option<&ExecutionRow>) -> Result<Option<ExecutionView>, StoreError> {
    Ok(match mirrored {
        Some(row) => row.record()?.archived_view(),
        None => None,
    })
}
