//! The normalized execution view of a scheduler task, with derived latencies:
//! queue = processingStartedAt − scheduledFor and processing = completedAt −
//! processingStartedAt describe the latest attempt; endToEnd = completedAt − createdAt
//! the whole task. Each is null until both of its ends exist. On request the view also
//! lists every attempt with its own queue (startedAt − dueAt) and run (finishedAt − startedAt) time.

use chrono::{DateTime, Utc};
use dtp_contract::{AttemptResponse, TaskResponse, TaskStatus};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({
    "schedulerTaskId": 41, "status": "SUCCEEDED", "attemptCount": 1, "maxAttempts": 3,
    "retryState": "COMPLETED", "lastError": null,
    "createdAt": "2026-11-23T10:00:00.120Z", "scheduledFor": "2026-11-23T10:00:00.120Z",
    "processingStartedAt": "2026-11-23T10:00:00.122Z", "completedAt": "2026-11-23T10:00:00.125Z",
    "queueLatencyMs": 2, "processingLatencyMs": 3, "endToEndLatencyMs": 5, "result": {"messageId": "m-1"},
    "archived": false
}))]
pub struct ExecutionView {
    pub scheduler_task_id: i64,
    pub status: TaskStatus,
    pub attempt_count: i32,
    pub max_attempts: i32,
    pub retry_state: dtp_contract::RetryState,
    pub last_error: Option<String>,
    #[serde(with = "dtp_contract::millis")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "dtp_contract::millis")]
    pub scheduled_for: DateTime<Utc>,
    #[serde(with = "dtp_contract::millis::option")]
    pub processing_started_at: Option<DateTime<Utc>>,
    #[serde(with = "dtp_contract::millis::option")]
    pub completed_at: Option<DateTime<Utc>>,
    pub queue_latency_ms: Option<i64>,
    pub processing_latency_ms: Option<i64>,
    pub end_to_end_latency_ms: Option<i64>,
    /// What the task produced when it SUCCEEDED, as the scheduler keeps it; null otherwise.
    #[schema(value_type = Option<Object>)]
    pub result: Option<serde_json::Value>,
    /// Every attempt, oldest first; only when asked for (`include=attempts`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<Vec<AttemptView>>,
    /// True when the scheduler has deleted the finished task under retention and this view
    /// is TaskPilot's last copy of it (no result, no queue latency, no attempts).
    pub archived: bool,
}

/// One attempt of the task, with the time it waited and the time it ran.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttemptView {
    pub attempt: i32,
    pub worker_id: String,
    /// When the task became due for this attempt; null for attempts the scheduler
    /// recorded before it kept this time.
    #[serde(with = "dtp_contract::millis::option")]
    pub due_at: Option<DateTime<Utc>>,
    #[serde(with = "dtp_contract::millis")]
    pub started_at: DateTime<Utc>,
    #[serde(with = "dtp_contract::millis::option")]
    pub finished_at: Option<DateTime<Utc>>,
    /// The scheduler's outcome (`SUCCEEDED`, `FAILED`, ...); null while running.
    pub outcome: Option<String>,
    pub error: Option<String>,
    /// startedAt − dueAt; null when dueAt is unknown.
    pub queue_ms: Option<i64>,
    /// finishedAt − startedAt; null while the attempt runs.
    pub run_ms: Option<i64>,
}

impl ExecutionView {
    /// The same view with the task's attempts (oldest first) and their latencies.
    pub fn with_attempts(self, attempts: &[AttemptResponse]) -> Self {
        Self {
            attempts: Some(attempts.iter().map(attempt_view).collect()),
            ..self
        }
    }
}

/// One attempt's view, its latencies computed from the millisecond timestamps the user sees.
pub fn attempt_view(attempt: &AttemptResponse) -> AttemptView {
    let started = truncate_to_millis(attempt.started_at);
    let due = attempt.due_at.map(truncate_to_millis);
    let finished = attempt.finished_at.map(truncate_to_millis);
    AttemptView {
        attempt: attempt.attempt,
        worker_id: attempt.worker_id.clone(),
        due_at: attempt.due_at,
        started_at: attempt.started_at,
        finished_at: attempt.finished_at,
        outcome: attempt.outcome.clone(),
        error: attempt.error.clone(),
        queue_ms: due.map(|d| millis_between(d, started)),
        run_ms: finished.map(|f| millis_between(started, f)),
    }
}

/// Builds the view from the scheduler's task, computing latencies from the
/// millisecond timestamps the user sees.
pub fn execution_view(task: &TaskResponse) -> ExecutionView {
    let created = truncate_to_millis(task.created_at);
    let scheduled = truncate_to_millis(task.scheduled_for);
    let started = task.processing_started_at.map(truncate_to_millis);
    let completed = task.completed_at.map(truncate_to_millis);
    // After a failed attempt the task is due again later than that attempt started:
    // the stored start then belongs to an earlier attempt than `scheduledFor` does.
    let latest_attempt_started = started.filter(|s| *s >= scheduled);
    ExecutionView {
        scheduler_task_id: task.id,
        status: task.status,
        attempt_count: task.attempt_count,
        max_attempts: task.max_attempts,
        retry_state: task.retry_state,
        last_error: task.last_error.clone(),
        created_at: task.created_at,
        scheduled_for: task.scheduled_for,
        processing_started_at: task.processing_started_at,
        completed_at: task.completed_at,
        queue_latency_ms: latest_attempt_started.map(|s| millis_between(scheduled, s)),
        processing_latency_ms: latest_attempt_started
            .zip(completed)
            .map(|(s, c)| millis_between(s, c)),
        end_to_end_latency_ms: completed.map(|c| millis_between(created, c)),
        result: task.result.clone(),
        attempts: None,
        archived: false,
    }
}

fn truncate_to_millis(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(at.timestamp_millis()).unwrap_or(at)
}

/// Milliseconds from `from` to `to`, never negative (clocks of one database cannot run back,
/// but a view must not show a negative duration if they ever did).
pub(crate) fn millis_between(from: DateTime<Utc>, to: DateTime<Utc>) -> i64 {
    (to - from).num_milliseconds().max(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use dtp_contract::RetryState;

    fn at(ms: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + chrono::Duration::milliseconds(ms)
    }

    fn task(
        status: TaskStatus,
        scheduled: i64,
        started: Option<i64>,
        completed: Option<i64>,
    ) -> TaskResponse {
        TaskResponse {
            id: 9,
            task_type: "demo".into(),
            payload: serde_json::Value::Null,
            status,
            attempt_count: 1,
            max_attempts: 3,
            timeout_ms: 1_000,
            retry_state: RetryState::None,
            last_error: None,
            created_at: at(0),
            scheduled_for: at(scheduled),
            processing_started_at: started.map(at),
            completed_at: completed.map(at),
            updated_at: at(0),
            result: None,
        }
    }

    fn latencies(view: &ExecutionView) -> (Option<i64>, Option<i64>, Option<i64>) {
        (
            view.queue_latency_ms,
            view.processing_latency_ms,
            view.end_to_end_latency_ms,
        )
    }

    #[test]
    fn pending_task_has_no_latencies() {
        let view = execution_view(&task(TaskStatus::Pending, 0, None, None));
        assert_eq!(latencies(&view), (None, None, None));
        assert_eq!(view.scheduler_task_id, 9);
    }

    #[test]
    fn running_task_has_only_queue_latency() {
        let view = execution_view(&task(TaskStatus::Running, 10, Some(25), None));
        assert_eq!(latencies(&view), (Some(15), None, None));
    }

    #[test]
    fn finished_task_has_all_three() {
        let view = execution_view(&task(TaskStatus::Succeeded, 10, Some(25), Some(125)));
        assert_eq!(latencies(&view), (Some(15), Some(100), Some(125)));
    }

    #[test]
    fn the_result_is_passed_through() {
        let mut succeeded = task(TaskStatus::Succeeded, 10, Some(25), Some(125));
        assert_eq!(execution_view(&succeeded).result, None);
        succeeded.result = Some(serde_json::json!({"messageId": "m-1"}));
        assert_eq!(
            execution_view(&succeeded).result,
            Some(serde_json::json!({"messageId": "m-1"}))
        );
    }

    #[test]
    fn canceled_before_starting_has_only_end_to_end() {
        let view = execution_view(&task(TaskStatus::Canceled, 0, None, Some(40)));
        assert_eq!(latencies(&view), (None, None, Some(40)));
    }

    #[test]
    fn waiting_for_a_retry_hides_the_previous_attempts_start() {
        // Attempt 1 started at 5 and failed; attempt 2 is due at 500.
        let view = execution_view(&task(TaskStatus::Pending, 500, Some(5), None));
        assert_eq!(latencies(&view), (None, None, None));
        // Canceled during the backoff: only the whole task's duration is known.
        let view = execution_view(&task(TaskStatus::Canceled, 500, Some(5), Some(200)));
        assert_eq!(latencies(&view), (None, None, Some(200)));
    }

    #[test]
    fn latencies_use_the_millisecond_timestamps_shown() {
        let mut t = task(TaskStatus::Succeeded, 0, Some(1), Some(2));
        t.scheduled_for += chrono::Duration::microseconds(999);
        t.processing_started_at = t
            .processing_started_at
            .map(|s| s + chrono::Duration::microseconds(1));
        let view = execution_view(&t);
        assert_eq!(view.queue_latency_ms, Some(1));
    }

    #[test]
    fn view_serializes_in_camel_case_with_millisecond_timestamps() {
        let json = serde_json::to_value(execution_view(&task(
            TaskStatus::Succeeded,
            10,
            Some(25),
            Some(125),
        )))
        .unwrap();
        assert_eq!(json["schedulerTaskId"], 9);
        assert_eq!(json["queueLatencyMs"], 15);
        assert_eq!(json["endToEndLatencyMs"], 125);
        assert_eq!(json["completedAt"], "2026-01-01T00:00:00.125Z");
        assert_eq!(json["retryState"], "NONE");
    }

    fn attempt(number: i32, due: Option<i64>, started: i64, finished: Option<i64>) -> AttemptResponse {
        AttemptResponse {
            attempt: number,
            worker_id: "dtp-1".into(),
            due_at: due.map(at),
            started_at: at(started),
            finished_at: finished.map(at),
            outcome: finished.map(|_| "FAILED".into()),
            error: None,
        }
    }

    #[test]
    fn attempts_have_their_queue_and_run_times() {
        let view = execution_view(&task(TaskStatus::Running, 500, Some(520), None)).with_attempts(&[
            attempt(1, Some(0), 5, Some(105)),
            attempt(2, Some(500), 520, None),
        ]);
        let attempts = view.attempts.unwrap();
        let latencies: Vec<(i32, Option<i64>, Option<i64>)> = attempts
            .iter()
            .map(|a| (a.attempt, a.queue_ms, a.run_ms))
            .collect();
        assert_eq!(latencies, [(1, Some(5), Some(100)), (2, Some(20), None)]);
        assert_eq!(attempts[0].outcome.as_deref(), Some("FAILED"));
        assert_eq!(attempts[1].outcome, None);
    }

    #[test]
    fn an_attempt_without_due_time_has_no_queue_time() {
        let view = attempt_view(&attempt(1, None, 5, Some(7)));
        assert_eq!((view.queue_ms, view.run_ms), (None, Some(2)));
    }

    #[test]
    fn attempt_latencies_use_millisecond_timestamps_and_never_go_negative() {
        let mut a = attempt(1, Some(10), 10, Some(12));
        a.due_at = a.due_at.map(|d| d + chrono::Duration::microseconds(999));
        a.started_at += chrono::Duration::microseconds(1);
        a.finished_at = a.finished_at.map(|f| f + chrono::Duration::microseconds(999));
        let view = attempt_view(&a);
        assert_eq!((view.queue_ms, view.run_ms), (Some(0), Some(2)));
        // A due time after the start (clock trouble) reads as no wait, not a negative one.
        let view = attempt_view(&attempt(1, Some(30), 10, Some(5)));
        assert_eq!((view.queue_ms, view.run_ms), (Some(0), Some(0)));
    }

    #[test]
    fn attempts_appear_in_json_only_when_asked_for() {
        let plain = serde_json::to_value(execution_view(&task(TaskStatus::Pending, 0, None, None))).unwrap();
        assert!(plain.get("attempts").is_none(), "{plain}");
        let none_yet = serde_json::to_value(
            execution_view(&task(TaskStatus::Pending, 0, None, None)).with_attempts(&[]),
        )
        .unwrap();
        assert_eq!(none_yet["attempts"], serde_json::json!([]));
        let json =
            serde_json::to_value(
                execution_view(&task(TaskStatus::Succeeded, 10, Some(25), Some(125)))
                    .with_attempts(&[attempt(1, Some(10), 25, Some(125))]),
            )
            .unwrap();
        assert_eq!(
            json["attempts"][0],
            serde_json::json!({
                "attempt": 1,
                "workerId": "dtp-1",
                "dueAt": "2026-01-01T00:00:00.010Z",
                "startedAt": "2026-01-01T00:00:00.025Z",
                "finishedAt": "2026-01-01T00:00:00.125Z",
                "outcome": "FAILED",
                "error": null,
                "queueMs": 15,
                "runMs": 100,
            })
        );
    }
}
