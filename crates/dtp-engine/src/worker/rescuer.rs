//! TaskRescuer: finds RUNNING tasks whose lease expired (their worker crashed or lost
//! the database) and ends the lost attempt: due again at once, or FAILED when exhausted.

use std::sync::Arc;
use std::time::Duration;

use dtp_contract::{RetryState, TaskStatus};
use tokio_util::sync::CancellationToken;

use crate::domain::{transition, AttemptOutcome, TaskEvent, TaskState};
use crate::metrics::EngineMetrics;
use crate::store::tasks::{AttemptEnd, ExpiredLease, Tasks};
use crate::store::StoreError;

/// Expired leases handled per round.
const RESCUE_BATCH: i64 = 500;

#[derive(Clone)]
pub struct TaskRescuer {
    tasks: Tasks,
    interval: Duration,
    metrics: Arc<EngineMetrics>,
}

impl TaskRescuer {
    pub fn new(tasks: Tasks, interval: Duration, metrics: Arc<EngineMetrics>) -> Self {
        Self {
            tasks,
            interval,
            metrics,
        }
    }

    /// Rescues every `interval` until `shutdown` fires.
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                () = tokio::time::sleep(self.interval) => {}
                () = shutdown.cancelled() => return,
            }
            if let Err(e) = self.rescue_expired_leases().await {
                tracing::warn!(error = %e, "rescue round failed");
            }
        }
    }

    /// One round: ends every lost attempt found; returns how many tasks were rescued.
    pub async fn rescue_expired_leases(&self) -> Result<usize, StoreError> {
        let expired = self.tasks.expired_leases(RESCUE_BATCH).await?;
        let mut rescued = 0;
        for lost in expired {
            let end = rescue_decision(&lost);
            let (task_id, next) = (lost.id, end.next.status);
            if self.tasks.rescue(end).await? {
                rescued += 1;
                self.metrics.rescues.inc();
                tracing::warn!(task.id = task_id, task.attempt = lost.attempt_count, worker.id = %lost.worker_id, next = %next, "rescued task from a lost worker");
            }
        }
        if rescued > 0 {
            // Rescued tasks are due at once: workers waiting for leases on any engine may take them.
            self.tasks.announce_available().await?;
        }
        Ok(rescued)
    }
}

/// The state machine's verdict on an attempt whose worker stopped heartbeating.
pub fn rescue_decision(lost: &ExpiredLease) -> AttemptEnd {
    let event = TaskEvent::LeaseExpired {
        attempt: lost.attempt_count,
        max_attempts: lost.max_attempts,
    };
    let running = TaskState::new(TaskStatus::Running, RetryState::None);
    let next = transition(running, event).unwrap_or_else(|illegal| {
        // Unreachable while the state machine allows these events on RUNNING; if it ever
        // does not, the task ends FAILED rather than staying RUNNING, and it is said.
        tracing::error!(task.id = lost.id, %illegal, "illegal transition: the task is failed");
        TaskState::new(TaskStatus::Failed, RetryState::Exhausted)
    });
    AttemptEnd {
        task_id: lost.id,
        lease_token: lost.lease_token,
        next,
        outcome: AttemptOutcome::Lost,
        error: Some(format!(
            "worker {} was lost: its lease expired mid-attempt",
            lost.worker_id
        )),
        // The task did not fail, its worker did: the retry is due at once, so that recovery
        // takes no longer than lease expiry plus one rescue interval.
        retry_in: (next.retry_state == RetryState::RetryScheduled).then_some(Duration::ZERO),
        result: None,
        lease_secret: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lost(attempt: i32, max: i32) -> ExpiredLease {
        ExpiredLease {
            id: 5,
            attempt_count: attempt,
            max_attempts: max,
            lease_token: 9,
            worker_id: "ghost".into(),
        }
    }

    #[test]
    fn a_lost_attempt_with_attempts_left_is_due_again_at_once() {
        let end = rescue_decision(&lost(1, 3));
        assert_eq!(
            end.next,
            TaskState::new(TaskStatus::Pending, RetryState::RetryScheduled)
        );
        assert_eq!(end.retry_in, Some(Duration::ZERO));
        assert_eq!(end.outcome, AttemptOutcome::Lost);
        assert!(end.error.unwrap().contains("ghost"));
    }

    #[test]
    fn a_lost_last_attempt_fails_the_task() {
        let end = rescue_decision(&lost(3, 3));
        assert_eq!(
            end.next,
            TaskState::new(TaskStatus::Failed, RetryState::Exhausted)
        );
        assert_eq!(end.retry_in, None);
    }
}
