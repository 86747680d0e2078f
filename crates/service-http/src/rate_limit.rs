//! Quotas per caller (an API key, a service token): a token bucket each, refilled at a
//! steady rate up to a burst. A request over its caller's quota is answered `429
//! RATE_LIMITED` with `Retry-After`. Buckets live in each process: N processes behind a
//! balancer let a caller through at up to N times the rate.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::http::header::{HeaderValue, RETRY_AFTER};
use actix_web::http::StatusCode;
use actix_web::HttpResponse;

use crate::http_errors::json_error;

/// A caller's quota: `per_second` units refilled each second, at most `burst` saved up.
/// `per_second` 0 means no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub per_second: u32,
    pub burst: u32,
}

impl Quota {
    pub const UNLIMITED: Quota = Quota {
        per_second: 0,
        burst: 0,
    };

    fn is_unlimited(self) -> bool {
        self.per_second == 0
    }
}

/// The quota named by `<prefix>_RATE_LIMIT_PER_SEC` (0 turns limits off) and
/// `<prefix>_RATE_LIMIT_BURST` (default: two seconds' worth).
pub fn quota(
    source: &dyn service_process::env_config::SettingSource,
    prefix: &str,
    default_per_second: u32,
) -> Result<Quota, service_process::env_config::ConfigError> {
    use service_process::env_config::parsed;
    let per_second = parsed(
        source,
        &format!("{prefix}_RATE_LIMIT_PER_SEC"),
        default_per_second,
        |_| Ok(()),
    )?;
    let burst = parsed(
        source,
        &format!("{prefix}_RATE_LIMIT_BURST"),
        per_second.saturating_mul(2),
        |n| {
            if per_second > 0 && *n == 0 {
                Err("must be at least 1 while a rate limit is set".into())
            } else {
                Ok(())
            }
        },
    )?;
    Ok(Quota { per_second, burst })
}

/// One caller's saved-up units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    units: f64,
    refilled_at: Instant,
}

impl Bucket {
    /// A full bucket.
    pub fn full(quota: Quota, now: Instant) -> Self {
        Self {
            units: f64::from(quota.burst),
            refilled_at: now,
        }
    }

    /// Takes `cost` units (at most the burst, so every request can pass eventually), or says
    /// how long until they are there; a refused request takes nothing.
    pub fn take(&mut self, quota: Quota, cost: u32, now: Instant) -> Result<(), Duration> {
        let rate = f64::from(quota.per_second);
        let burst = f64::from(quota.burst);
        let elapsed = now.saturating_duration_since(self.refilled_at).as_secs_f64();
        self.units = (self.units + elapsed * rate).min(burst);
        self.refilled_at = now;
        let cost = f64::from(cost).min(burst);
        if self.units >= cost {
            self.units -= cost;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((cost - self.units) / rate))
        }
    }
}

/// A request over its caller's quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("rate limit of {per_second} requests per second exceeded; retry in {} ms", retry_after.as_millis())]
pub struct RateLimited {
    pub per_second: u32,
    pub retry_after: Duration,
}

impl RateLimited {
    /// `429 RATE_LIMITED` with `Retry-After` in whole seconds (at least 1).
    pub fn response(&self) -> HttpResponse {
        let mut response = json_error(StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED", self.to_string());
        let seconds = self.retry_after.as_secs_f64().ceil().max(1.0);
        response.headers_mut().insert(
            RETRY_AFTER,
            HeaderValue::from_str(&format!("{seconds:.0}")).unwrap_or(HeaderValue::from_static("1")),
        );
        response
    }
}

/// Every caller's bucket in this process. Callers are the service's known keys or tokens, so
/// the map stays as small as their number.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    quota: Quota,
    buckets: Arc<Mutex<HashMap<String, Bucket>>>,
}

impl RateLimiter {
    pub fn new(quota: Quota) -> Self {
        Self {
            quota,
            buckets: Arc::default(),
        }
    }

    /// Charges `caller` `cost` units (a request is 1; a batch may cost one per item).
    pub fn charge(&self, caller: &str, cost: u32) -> Result<(), RateLimited> {
        if self.quota.is_unlimited() {
            return Ok(());
        }
        let now = Instant::now();
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let bucket = buckets
            .entry(caller.to_owned())
            .or_insert_with(|| Bucket::full(self.quota, now));
        bucket
            .take(self.quota, cost, now)
            .map_err(|retry_after| RateLimited {
                per_second: self.quota.per_second,
                retry_after,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUOTA: Quota = Quota {
        per_second: 10,
        burst: 20,
    };

    #[test]
    fn a_full_bucket_lets_a_burst_through_then_refills_at_the_rate() {
        let start = Instant::now();
        let mut bucket = Bucket::full(QUOTA, start);
        for _ in 0..20 {
            assert_eq!(bucket.take(QUOTA, 1, start), Ok(()));
        }
        assert_eq!(bucket.take(QUOTA, 1, start), Err(Duration::from_millis(100)));
        let later = start + Duration::from_millis(250);
        assert_eq!(bucket.take(QUOTA, 2, later), Ok(()));
        assert!(bucket.take(QUOTA, 1, later).is_err(), "half a unit left");
        // Never more than the burst is saved up.
        let much_later = start + Duration::from_secs(3_600);
        assert_eq!(bucket.take(QUOTA, 20, much_later), Ok(()));
        assert!(bucket.take(QUOTA, 1, much_later).is_err());
    }

    #[test]
    fn a_refused_request_takes_nothing_and_a_cost_above_the_burst_waits_for_a_full_bucket() {
        let start = Instant::now();
        let mut bucket = Bucket::full(QUOTA, start);
        assert_eq!(bucket.take(QUOTA, 15, start), Ok(()));
        assert_eq!(bucket.take(QUOTA, 10, start), Err(Duration::from_millis(500)));
        assert_eq!(bucket.take(QUOTA, 5, start), Ok(()));
        let refilled = start + Duration::from_secs(2);
        assert_eq!(bucket.take(QUOTA, 1_000, refilled), Ok(()));
    }

    #[test]
    fn quotas_are_read_with_a_burst_of_two_seconds_by_default() {
        use service_process::env_config::FixedSettings;
        let read = |settings: &[(&str, &str)]| quota(&FixedSettings(settings), "X", 100);
        assert_eq!(
            read(&[]).unwrap(),
            Quota {
                per_second: 100,
                burst: 200
            }
        );
        assert_eq!(
            read(&[("X_RATE_LIMIT_PER_SEC", "5"), ("X_RATE_LIMIT_BURST", "7")]).unwrap(),
            Quota {
                per_second: 5,
                burst: 7
            }
        );
        assert!(read(&[("X_RATE_LIMIT_PER_SEC", "0")]).unwrap().is_unlimited());
        assert_eq!(
            read(&[("X_RATE_LIMIT_BURST", "0")]).unwrap_err().name,
            "X_RATE_LIMIT_BURST"
        );
        assert_eq!(
            read(&[("X_RATE_LIMIT_PER_SEC", "-1")]).unwrap_err().name,
            "X_RATE_LIMIT_PER_SEC"
        );
    }

    #[test]
    fn callers_have_buckets_of_their_own_and_no_quota_means_no_limit() {
        let limiter = RateLimiter::new(Quota {
            per_second: 1,
            burst: 2,
        });
        assert!(limiter.charge("a", 2).is_ok());
        let refused = limiter.charge("a", 1).unwrap_err();
        assert_eq!(refused.per_second, 1);
        assert!(refused.retry_after > Duration::from_millis(900));
        assert!(limiter.charge("b", 2).is_ok(), "another caller is not slowed");
        let response = refused.response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers().get(RETRY_AFTER).unwrap(), "1");
        let open = RateLimiter::new(Quota::UNLIMITED);
        assert!((0..10_000).all(|_| open.charge("a", 100).is_ok()));
    }
}
