//! What TaskPilot knows of a scheduler task's execution without asking the scheduler: the
//! state its change feed last reported, advanced one event at a time. Also the view of a task
//! the scheduler has since deleted under retention, answered from that last copy.

use chrono::{DateTime, Utc};
use dtp_contract::{ChangeEvent, EventKind, RetryState, TaskResponse, TaskStatus};

use super::execution_view::{millis_between, ExecutionView};

/// The mirrored execution of one scheduler task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionRecord {
    pub scheduler_task_id: i64,
    pub status: TaskStatus,
    pub retry_state: RetryState,
    pub attempt_count: i32,
    /// Known from the scheduler's task (bind, reconcile), not from events.
    pub max_attempts: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    /// When the latest attempt began.
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
}

impl ExecutionRecord {
    /// The record of a task as the scheduler answered for it.
    pub fn of_task(task: &TaskResponse) -> Self {
        Self {
            scheduler_task_id: task.id,
            status: task.status,
            retry_state: task.retry_state,
            attempt_count: task.attempt_count,
            max_attempts: Some(task.max_attempts),
            last_error: task.last_error.clone(),
            created_at: Some(task.created_at),
            started_at: task.processing_started_at,
            completed_at: task.completed_at,
        }
    }

    /// The record of a task first heard of through `event`.
    pub fn first_heard(event: &ChangeEvent) -> Self {
        let unknown = Self {
            scheduler_task_id: event.task_id,
            status: event.status,
            retry_state: event.retry_state,
            attempt_count: event.attempt,
            max_attempts: None,
            last_error: None,
            created_at: (event.kind == EventKind::Created).then_some(event.at),
            started_at: None,
            completed_at: None,
        };
        unknown.after(event)
    }

    /// The record once `event` happened to the task.
    pub fn after(self, event: &ChangeEvent) -> Self {
        let started_at = match event.kind {
            EventKind::Started => Some(event.at),
            _ => self.started_at,
        };
        Self {
            status: event.status,
            retry_state: event.retry_state,
            attempt_count: event.attempt,
            last_error: event.error.clone().or(self.last_error),
            created_at: self
                .created_at
                .or((event.kind == EventKind::Created).then_some(event.at)),
            started_at,
            completed_at: event.status.is_terminal().then_some(event.at),
            ..self
        }
    }

    /// The execution view of a finished task the scheduler no longer keeps, from this last
    /// copy: `archived`, without the result (the feed does not carry it) or a queue latency
    /// (the feed does not say when a retry fell due). `None` unless the task had finished.
    pub fn archived_view(&self) -> Option<ExecutionView> {
        let completed = self.completed_at.filter(|_| self.status.is_terminal())?;
        let created = self.created_at.unwrap_or(completed);
        Some(ExecutionView {
            scheduler_task_id: self.scheduler_task_id,
            status: self.status,
            attempt_count: self.attempt_count,
            max_attempts: self.max_attempts.unwrap_or(self.attempt_count),
            retry_state: self.retry_state,
            last_error: self.last_error.clone(),
            created_at: created,
            scheduled_for: self.started_at.unwrap_or(created),
            processing_started_at: self.started_at,
            completed_at: Some(completed),
            queue_latency_ms: None,
            processing_latency_ms: self.started_at.map(|s| millis_between(s, completed)),
            end_to_end_latency_ms: Some(millis_between(created, completed)),
            result: None,
            attempts: None,
            archived: true,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(ms: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + chrono::Duration::milliseconds(ms)
    }

    fn event(
        kind: EventKind,
        status: TaskStatus,
        retry_state: RetryState,
        attempt: i32,
        ms: i64,
    ) -> ChangeEvent {
        ChangeEvent {
            cursor: format!("c{ms}"),
            task_id: 7,
            task_type: "demo".into(),
            kind,
            status,
            retry_state,
            attempt,
            at: at(ms),
            error: matches!(
                kind,
                EventKind::RetryScheduled | EventKind::Failed | EventKind::Lost
            )
            .then(|| format!("boom at {ms}")),
            idempotency_key: None,
        }
    }

    fn history() -> Vec<ChangeEvent> {
        use EventKind::*;
        vec![
            event(Created, TaskStatus::Pending, RetryState::None, 0, 0),
            event(Started, TaskStatus::Running, RetryState::None, 1, 10),
            event(
                RetryScheduled,
                TaskStatus::Pending,
                RetryState::RetryScheduled,
                1,
                20,
            ),
            event(Started, TaskStatus::Running, RetryState::RetryScheduled, 2, 30),
            event(Succeeded, TaskStatus::Succeeded, RetryState::Completed, 2, 45),
        ]
    }

    fn replay(events: &[ChangeEvent]) -> ExecutionRecord {
        let (first, rest) = events.split_first().unwrap();
        rest.iter()
            .fold(ExecutionRecord::first_heard(first), ExecutionRecord::after)
    }

    #[test]
    fn a_history_ends_in_the_state_of_its_last_event() {
        let record = replay(&history());
        assert_eq!(
            (record.status, record.retry_state, record.attempt_count),
            (TaskStatus::Succeeded, RetryState::Completed, 2)
        );
        assert_eq!(
            (record.created_at, record.started_at, record.completed_at),
            (Some(at(0)), Some(at(30)), Some(at(45)))
        );
        assert_eq!(
            record.last_error.as_deref(),
            Some("boom at 20"),
            "the last failure stays known"
        );
    }

    #[test]
    fn an_event_applied_twice_changes_nothing() {
        let events = history();
        for cut in 1..events.len() {
            let once = replay(&events[..cut]);
            let twice = once.clone().after(&events[cut - 1]);
            assert_eq!(once, twice, "after event {cut}");
        }
    }

    #[test]
    fn a_retry_is_not_finished_and_a_new_attempt_clears_the_end() {
        let events = history();
        let retrying = replay(&events[..3]);
        assert_eq!(retrying.completed_at, None);
        assert_eq!(
            retrying.archived_view(),
            None,
            "only a finished task has an archived view"
        );
        let lost = ExecutionRecord::first_heard(&event(
            EventKind::Lost,
            TaskStatus::Failed,
            RetryState::Exhausted,
            3,
            90,
        ));
        assert_eq!(
            lost.completed_at,
            Some(at(90)),
            "a lost last attempt finishes the task"
        );
    }

    #[test]
    fn the_archived_view_has_the_latencies_the_feed_can_tell() {
        let mut record = replay(&history());
        record.max_attempts = Some(3);
        let view = record.archived_view().unwrap();
        assert!(view.archived);
        assert_eq!(
            (
                view.queue_latency_ms,
                view.processing_latency_ms,
                view.end_to_end_latency_ms
            ),
            (None, Some(15), Some(45))
        );
        assert_eq!((view.max_attempts, view.result), (3, None));
    }

    #[test]
    fn the_record_of_a_task_keeps_what_the_scheduler_said() {
        let task = TaskResponse {
            id: 9,
            task_type: "demo".into(),
            payload: serde_json::Value::Null,
            status: TaskStatus::Pending,
            attempt_count: 0,
            max_attempts: 4,
            timeout_ms: 1_000,
            retry_state: RetryState::None,
            last_error: None,
            created_at: at(0),
            scheduled_for: at(0),
            processing_started_at: None,
            completed_at: None,
            updated_at: at(0),
            result: None,
        };
        let record = ExecutionRecord::of_task(&task);
        assert_eq!((record.max_attempts, record.created_at), (Some(4), Some(at(0))));
        let started = record.after(&event(
            EventKind::Started,
            TaskStatus::Running,
            RetryState::None,
            1,
            5,
        ));
        assert_eq!((started.max_attempts, started.started_at), (Some(4), Some(at(5))));
    }
}
