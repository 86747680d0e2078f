//! Exponential backoff with "equal jitter", capped: the delay before attempt n+1 lies in
//! [d/2, d] where d = min(max, base * 2^(n-1)). Half of the delay is kept so that gaps
//! still grow from one attempt to the next, the other half spreads retries of a burst.

use chrono::{DateTime, Utc};
use std::time::Duration;

pub const DEFAULT_BACKOFF_BASE: Duration = Duration::from_millis(1_000);
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub base: Duration,
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            base: DEFAULT_BACKOFF_BASE,
            max: DEFAULT_BACKOFF_MAX,
        }
    }
}

impl RetryPolicy {
    /// The uncapped-then-capped exponential delay after failed attempt `attempt` (1-based).
    pub fn ceiling(&self, attempt: i32) -> Duration {
        let exponent = u32::try_from(attempt.saturating_sub(1)).unwrap_or(0).min(32);
        let factor = 1u64 << exponent;
        let base_ms = u64::try_from(self.base.as_millis()).unwrap_or(u64::MAX);
        let max_ms = u64::try_from(self.max.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(base_ms.saturating_mul(factor).min(max_ms))
    }

    /// The delay before the next attempt; `jitter` in [0, 1] picks a point in [ceiling/2, ceiling].
    pub fn delay(&self, attempt: i32, jitter: f64) -> Duration {
        let ceiling = self.ceiling(attempt);
        let jitter = if jitter.is_finite() {
            jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        ceiling / 2 + ceiling.mul_f64(jitter / 2.0)
    }

    /// When the next attempt is due, given the moment attempt `attempt` failed.
    pub fn next_attempt_at(&self, now: DateTime<Utc>, attempt: i32, jitter: f64) -> DateTime<Utc> {
        let delay = chrono::Duration::from_std(self.delay(attempt, jitter)).unwrap_or(chrono::Duration::MAX);
        now.checked_add_signed(delay).unwrap_or(DateTime::<Utc>::MAX_UTC)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn policy(base_ms: u64, max_ms: u64) -> RetryPolicy {
        RetryPolicy {
            base: Duration::from_millis(base_ms),
            max: Duration::from_millis(max_ms),
        }
    }

    #[test]
    fn ceiling_doubles_then_caps() {
        let p = policy(100, 1_000);
        let ceilings: Vec<u128> = (1..=6).map(|a| p.ceiling(a).as_millis()).collect();
        assert_eq!(ceilings, vec![100, 200, 400, 800, 1_000, 1_000]);
    }

    #[test]
    fn delay_stays_within_half_and_full_ceiling() {
        let p = policy(100, 10_000);
        for attempt in 1..=10 {
            let ceiling = p.ceiling(attempt);
            for jitter in [0.0, 0.25, 0.5, 0.999, 1.0] {
                let d = p.delay(attempt, jitter);
                assert!(
                    d >= ceiling / 2 && d <= ceiling,
                    "attempt {attempt} jitter {jitter}: {d:?}"
                );
            }
        }
        assert_eq!(p.delay(1, 0.0), Duration::from_millis(50));
        assert_eq!(p.delay(1, 1.0), Duration::from_millis(100));
    }

    #[test]
    fn gaps_never_shrink_below_the_previous_attempt_until_the_cap() {
        let p = policy(100, 100_000);
        for attempt in 1..10 {
            assert!(p.delay(attempt + 1, 0.0) >= p.delay(attempt, 1.0));
        }
    }

    #[test]
    fn out_of_range_inputs_are_clamped() {
        let p = policy(100, 1_000);
        assert_eq!(p.delay(0, 0.0), Duration::from_millis(50));
        assert_eq!(p.delay(-5, 2.0), Duration::from_millis(100));
        assert_eq!(p.delay(1, f64::NAN), Duration::from_millis(50));
        assert_eq!(p.ceiling(i32::MAX), Duration::from_millis(1_000));
        let huge = policy(u64::MAX, u64::MAX);
        assert!(huge.ceiling(64) > Duration::ZERO);
    }

    #[test]
    fn next_attempt_is_now_plus_delay() {
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let p = policy(1_000, 60_000);
        assert_eq!(p.next_attempt_at(now, 2, 1.0), now + chrono::Duration::seconds(2));
        let far = RetryPolicy {
            base: Duration::MAX,
            max: Duration::MAX,
        };
        assert_eq!(far.next_attempt_at(now, 3, 1.0), DateTime::<Utc>::MAX_UTC);
    }
}
