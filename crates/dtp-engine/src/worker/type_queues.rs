//! The claim loop's view of the types it claims from their own queue (those with a
//! concurrency limit): when each is worth another claim. A type whose claim came back short
//! is left alone until its next task falls due, one of its attempts here ends, new work is
//! announced, or the poll interval passes (an attempt ending in another engine).

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// One limited type's claim state.
#[derive(Debug, Clone, Copy)]
struct TypeQueue {
    concurrency: u32,
    look_again_at: Instant,
}

/// What one claim of a type's queue did.
#[derive(Debug, Clone, Copy)]
pub struct TypeClaimRound {
    pub asked: usize,
    pub got: usize,
    /// Milliseconds until the type's next pending task falls due, when the claim came back short.
    pub next_due_in_ms: Option<f64>,
}

pub struct TypeQueues {
    queues: Mutex<BTreeMap<String, TypeQueue>>,
}

impl TypeQueues {
    /// The limited types, each worth a claim now.
    pub fn new(limited: Vec<(String, u32)>, now: Instant) -> Self {
        let queues = limited
            .into_iter()
            .map(|(name, concurrency)| {
                (
                    name,
                    TypeQueue {
                        concurrency,
                        look_again_at: now,
                    },
                )
            })
            .collect();
        Self {
            queues: Mutex::new(queues),
        }
    }

    /// The types worth a claim at `now`, with their limits.
    pub fn due(&self, now: Instant) -> Vec<(String, u32)> {
        self.lock()
            .iter()
            .filter(|(_, q)| q.look_again_at <= now)
            .map(|(name, q)| (name.clone(), q.concurrency))
            .collect()
    }

    /// Records a claim of `task_type`'s queue made at `now`.
    pub fn claimed(&self, task_type: &str, round: TypeClaimRound, now: Instant, poll: Duration) {
        let mut queues = self.lock();
        let Some(queue) = queues.get_mut(task_type) else {
            return;
        };
        queue.look_again_at = if round.got < round.asked {
            // Short: nothing more is due, or the limit is reached. Either way, look again when
            // the next task falls due, and never later than the poll interval.
            let wait = round
                .next_due_in_ms
                .filter(|ms| *ms > 0.0)
                .and_then(|ms| Duration::try_from_secs_f64(ms / 1_000.0).ok())
                .map_or(poll, |due| due.min(poll));
            now + wait
        } else {
            now
        };
    }

    /// One of `task_type`'s attempts ended here: a slot under its limit may be free.
    pub fn attempt_ended(&self, task_type: &str, now: Instant) {
        if let Some(queue) = self.lock().get_mut(task_type) {
            queue.look_again_at = now;
        }
    }

    /// New work was announced: every type is worth a claim again.
    pub fn wake_all(&self, now: Instant) {
        for queue in self.lock().values_mut() {
            queue.look_again_at = now;
        }
    }

    /// How long until some type is worth a claim; `None` without limited types.
    pub fn next_look_in(&self, now: Instant) -> Option<Duration> {
        self.lock()
            .values()
            .map(|q| q.look_again_at.saturating_duration_since(now))
            .min()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, TypeQueue>> {
        self.queues.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLL: Duration = Duration::from_millis(250);

    fn round(asked: usize, got: usize, next_due_in_ms: Option<f64>) -> TypeClaimRound {
        TypeClaimRound {
            asked,
            got,
            next_due_in_ms,
        }
    }

    #[test]
    fn every_type_is_worth_a_claim_at_first() {
        let now = Instant::now();
        let queues = TypeQueues::new(vec![("a".into(), 2), ("b".into(), 5)], now);
        assert_eq!(queues.due(now), vec![("a".into(), 2), ("b".into(), 5)]);
        assert_eq!(queues.next_look_in(now), Some(Duration::ZERO));
        assert_eq!(TypeQueues::new(vec![], now).next_look_in(now), None);
    }

    #[test]
    fn a_full_claim_looks_again_at_once_and_a_short_one_waits() {
        let now = Instant::now();
        let queues = TypeQueues::new(vec![("a".into(), 2), ("b".into(), 5)], now);
        queues.claimed("a", round(10, 10, None), now, POLL);
        queues.claimed("b", round(10, 3, Some(40.0)), now, POLL);
        assert_eq!(queues.due(now), vec![("a".into(), 2)]);
        assert_eq!(queues.due(now + Duration::from_millis(40)).len(), 2);
        // Nothing pending, or due now but at the limit: the poll interval.
        queues.claimed("a", round(10, 0, None), now, POLL);
        queues.claimed("b", round(10, 0, Some(-3.0)), now, POLL);
        assert!(queues.due(now + POLL - Duration::from_millis(1)).is_empty());
        assert_eq!(queues.next_look_in(now), Some(POLL));
        // A task due in an hour: still no later than the poll interval.
        queues.claimed("a", round(10, 0, Some(3_600_000.0)), now, POLL);
        assert_eq!(queues.due(now + POLL).len(), 2);
    }

    #[test]
    fn an_ended_attempt_or_new_work_makes_a_type_worth_a_claim() {
        let now = Instant::now();
        let queues = TypeQueues::new(vec![("a".into(), 2), ("b".into(), 5)], now);
        queues.claimed("a", round(5, 0, None), now, POLL);
        queues.claimed("b", round(5, 0, None), now, POLL);
        queues.attempt_ended("a", now);
        queues.attempt_ended("unlimited", now);
        assert_eq!(queues.due(now), vec![("a".into(), 2)]);
        queues.wake_all(now);
        assert_eq!(queues.due(now).len(), 2);
    }
}
