//! Every legal move of a task between statuses, decided in one place. The store writes
//! exactly the `TaskState` this module returns, guarded by the state it was computed from.
//!
//! Who moves a task:
//! - PENDING → RUNNING: the worker's claim (`Claim`).
//! - RUNNING → SUCCEEDED / PENDING (retry) / FAILED: the attempt that holds the lease
//!   (`AttemptSucceeded`, `AttemptFailed`, `AttemptFailedNotRetryable`), or the rescuer when
//!   the lease expired (`LeaseExpired`).
//! - RUNNING → PENDING without a retry: the worker releasing attempts at shutdown (`Release`).
//! - PENDING / RUNNING → CANCELED: the cancel endpoint (`Cancel`).

use dtp_contract::{RetryState, TaskStatus};

/// A task's position in the state machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskState {
    pub status: TaskStatus,
    pub retry_state: RetryState,
}

impl TaskState {
    pub const fn new(status: TaskStatus, retry_state: RetryState) -> Self {
        Self { status, retry_state }
    }

    /// The state of a task that was just accepted.
    pub const NEW: TaskState = TaskState::new(TaskStatus::Pending, RetryState::None);
}

/// Something that happens to a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskEvent {
    /// A worker claimed the due task for its next attempt.
    Claim,
    /// The running attempt finished successfully.
    AttemptSucceeded,
    /// The running attempt (number `attempt` of `max_attempts`) failed, timed out or panicked.
    AttemptFailed { attempt: i32, max_attempts: i32 },
    /// The running attempt failed in a way no retry mends (an HTTP target's 4xx, a handler's
    /// "do not retry", a payload of the wrong shape): the task fails at once.
    AttemptFailedNotRetryable,
    /// The running attempt's lease expired: its worker is gone.
    LeaseExpired { attempt: i32, max_attempts: i32 },
    /// The worker gives the task back unfinished (shutdown); the attempt does not count.
    Release,
    /// A user asked to cancel the task.
    Cancel,
}

/// How an attempt ended, as recorded in the attempt history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    Succeeded,
    Failed,
    TimedOut,
    Canceled,
    Lost,
    Released,
}

dtp_contract::wire_names!(AttemptOutcome {
    Succeeded => "SUCCEEDED",
    Failed => "FAILED",
    TimedOut => "TIMED_OUT",
    Canceled => "CANCELED",
    Lost => "LOST",
    Released => "RELEASED",
});

/// The event does not apply to a task in this state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cannot {event:?} a task in state {from}")]
pub struct IllegalTransition {
    pub from: TaskStatus,
    pub event: TaskEvent,
}

/// What a claim writes for every task it takes: `transition` on `Claim` from PENDING (the
/// retry state is kept). A claim moves many tasks in one statement, so the store is given the
/// status rather than a decision per task; the tests hold the two to the same answer.
pub const CLAIMED: TaskStatus = TaskStatus::Running;

/// What a release at shutdown writes for the tasks of the attempts it ends: `transition` on
/// `Release` from RUNNING (the retry state is kept, the attempt not counted).
pub const RELEASED: TaskStatus = TaskStatus::Pending;

/// Decides the state that follows `current` when `event` happens.
///
/// Canceling an already canceled task is legal and leaves it as it is (cancel is idempotent).
pub fn transition(current: TaskState, event: TaskEvent) -> Result<TaskState, IllegalTransition> {
    use RetryState as R;
    use TaskStatus as S;
    let illegal = Err(IllegalTransition {
        from: current.status,
        event,
    });
    match (current.status, event) {
        (S::Pending, TaskEvent::Claim) => Ok(TaskState::new(S::Running, current.retry_state)),
        (S::Running, TaskEvent::AttemptSucceeded) => Ok(TaskState::new(S::Succeeded, R::Completed)),
        (
            S::Running,
            TaskEvent::AttemptFailed {
                attempt,
                max_attempts,
            }
            | TaskEvent::LeaseExpired {
                attempt,
                max_attempts,
            },
        ) => {
            if attempt >= max_attempts {
                Ok(TaskState::new(S::Failed, R::Exhausted))
            } else {
                Ok(TaskState::new(S::Pending, R::RetryScheduled))
            }
        }
        (S::Running, TaskEvent::AttemptFailedNotRetryable) => Ok(TaskState::new(S::Failed, R::NotRetryable)),
        (S::Running, TaskEvent::Release) => Ok(TaskState::new(S::Pending, current.retry_state)),
        (S::Pending | S::Running, TaskEvent::Cancel) => Ok(TaskState::new(S::Canceled, R::Canceled)),
        (S::Canceled, TaskEvent::Cancel) => Ok(current),
        _ => illegal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RetryState as R;
    use TaskStatus as S;

    #[test]
    fn the_statuses_claims_and_releases_write_are_the_state_machines() {
        for retry_state in RetryState::ALL {
            assert_eq!(
                transition(TaskState::new(S::Pending, retry_state), TaskEvent::Claim),
                Ok(TaskState::new(CLAIMED, retry_state))
            );
            assert_eq!(
                transition(TaskState::new(S::Running, retry_state), TaskEvent::Release),
                Ok(TaskState::new(RELEASED, retry_state))
            );
        }
    }

    const FAIL_EARLY: TaskEvent = TaskEvent::AttemptFailed {
        attempt: 1,
        max_attempts: 3,
    };
    const FAIL_LAST: TaskEvent = TaskEvent::AttemptFailed {
        attempt: 3,
        max_attempts: 3,
    };
    const LOST_EARLY: TaskEvent = TaskEvent::LeaseExpired {
        attempt: 2,
        max_attempts: 3,
    };
    const LOST_LAST: TaskEvent = TaskEvent::LeaseExpired {
        attempt: 3,
        max_attempts: 3,
    };
    const ALL_EVENTS: [TaskEvent; 9] = [
        TaskEvent::Claim,
        TaskEvent::AttemptSucceeded,
        FAIL_EARLY,
        FAIL_LAST,
        TaskEvent::AttemptFailedNotRetryable,
        LOST_EARLY,
        LOST_LAST,
        TaskEvent::Release,
        TaskEvent::Cancel,
    ];

    fn state(status: S, retry: R) -> TaskState {
        TaskState::new(status, retry)
    }

    /// Every state a row may hold (mirrors the `tasks_retry_state_matches_status` CHECK).
    fn all_states() -> Vec<TaskState> {
        vec![
            state(S::Pending, R::None),
            state(S::Pending, R::RetryScheduled),
            state(S::Running, R::None),
            state(S::Running, R::RetryScheduled),
            state(S::Succeeded, R::Completed),
            state(S::Failed, R::Exhausted),
            state(S::Failed, R::NotRetryable),
            state(S::Canceled, R::Canceled),
        ]
    }

    /// The full table of legal moves; anything not listed must be illegal.
    fn expected(from: TaskState, event: TaskEvent) -> Option<TaskState> {
        match (from.status, event) {
            (S::Pending, TaskEvent::Claim) => Some(state(S::Running, from.retry_state)),
            (S::Pending, TaskEvent::Cancel) => Some(state(S::Canceled, R::Canceled)),
            (S::Running, TaskEvent::AttemptSucceeded) => Some(state(S::Succeeded, R::Completed)),
            (S::Running, e) if e == FAIL_EARLY || e == LOST_EARLY => {
                Some(state(S::Pending, R::RetryScheduled))
            }
            (S::Running, e) if e == FAIL_LAST || e == LOST_LAST => Some(state(S::Failed, R::Exhausted)),
            (S::Running, TaskEvent::AttemptFailedNotRetryable) => Some(state(S::Failed, R::NotRetryable)),
            (S::Running, TaskEvent::Release) => Some(state(S::Pending, from.retry_state)),
            (S::Running, TaskEvent::Cancel) => Some(state(S::Canceled, R::Canceled)),
            (S::Canceled, TaskEvent::Cancel) => Some(from),
            _ => None,
        }
    }

    #[test]
    fn every_state_and_event_pair_matches_the_table() {
        let mut legal = 0;
        for from in all_states() {
            for event in ALL_EVENTS {
                let got = transition(from, event);
                match expected(from, event) {
                    Some(next) => {
                        legal += 1;
                        assert_eq!(got, Ok(next), "{from:?} + {event:?}");
                    }
                    None => assert_eq!(
                        got,
                        Err(IllegalTransition {
                            from: from.status,
                            event
                        }),
                        "{from:?} + {event:?} must be illegal"
                    ),
                }
            }
        }
        // 2 pending states x 2 events + 2 running states x 8 events + canceled x 1.
        assert_eq!(legal, 2 * 2 + 2 * 8 + 1);
    }

    #[test]
    fn terminal_states_accept_nothing_but_an_idempotent_cancel() {
        for from in all_states().into_iter().filter(|s| s.status.is_terminal()) {
            for event in ALL_EVENTS {
                let got = transition(from, event);
                if from.status == S::Canceled && event == TaskEvent::Cancel {
                    assert_eq!(got, Ok(from));
                } else {
                    assert!(got.is_err(), "{from:?} + {event:?}");
                }
            }
        }
    }

    #[test]
    fn a_retry_keeps_counting_until_max_attempts() {
        let running = state(S::Running, R::RetryScheduled);
        for max_attempts in 1..=5 {
            for attempt in 1..=max_attempts {
                let next = transition(
                    running,
                    TaskEvent::AttemptFailed {
                        attempt,
                        max_attempts,
                    },
                )
                .unwrap();
                if attempt < max_attempts {
                    assert_eq!(next, state(S::Pending, R::RetryScheduled));
                } else {
                    assert_eq!(next, state(S::Failed, R::Exhausted));
                }
            }
        }
    }

    #[test]
    fn outcomes_round_trip_through_their_names() {
        for outcome in AttemptOutcome::ALL {
            assert_eq!(AttemptOutcome::parse(outcome.as_str()), Some(outcome));
        }
        assert_eq!(AttemptOutcome::parse("succeeded"), None);
    }

    #[test]
    fn illegal_transition_explains_itself() {
        let err = transition(state(S::Succeeded, R::Completed), TaskEvent::Cancel).unwrap_err();
        assert_eq!(err.to_string(), "cannot Cancel a task in state SUCCEEDED");
    }
}
