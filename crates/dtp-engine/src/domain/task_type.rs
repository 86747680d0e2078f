//! What the engine knows of a task type before any of its tasks runs: a valid name, the
//! settings a type may declare (each optional, falling back to the engine's), and the
//! effective settings that apply to its tasks, including which queue they wait in.

use std::ops::RangeInclusive;
use std::time::Duration;

use super::new_task::{MAX_ATTEMPTS_RANGE, TIMEOUT_MS_RANGE};
use super::RetryPolicy;

/// Longest type name.
pub const TYPE_NAME_MAX_CHARS: usize = 100;
/// What `concurrency` may be.
pub const CONCURRENCY_RANGE: RangeInclusive<u32> = 1..=10_000;
/// What a backoff setting may be, ms (one day at most).
pub const BACKOFF_MS_RANGE: RangeInclusive<u64> = 1..=86_400_000;
/// What an external type's `lease_ms` may be (as `DTP_LEASE_MS`: 30 ms to one day).
pub const LEASE_MS_RANGE: RangeInclusive<u64> = 30..=86_400_000;

/// Why a name cannot be a task type's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a task type name must be 1 to {TYPE_NAME_MAX_CHARS} characters of A-Z, a-z, 0-9, '.', '_' and '-'")]
pub struct InvalidTypeName;

/// Checks a type name: 1–100 characters of `A-Za-z0-9._-`.
pub fn check_type_name(name: &str) -> Result<(), InvalidTypeName> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if name.is_empty() || name.len() > TYPE_NAME_MAX_CHARS || !name.chars().all(allowed) {
        return Err(InvalidTypeName);
    }
    Ok(())
}

/// The settings a type declares; `None` takes the engine's default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TypeOptions {
    pub max_attempts: Option<i32>,
    pub timeout_ms: Option<i32>,
    /// The longest `timeoutMs` a submission may ask for: with `concurrency`, what bounds how
    /// long one client can hold the type's slots.
    pub max_timeout_ms: Option<i32>,
    pub backoff_base_ms: Option<u64>,
    pub backoff_max_ms: Option<u64>,
    /// Most attempts of the type running at once across every engine on the database.
    pub concurrency: Option<u32>,
}

/// A declared setting out of its range, named as in the types file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct InvalidTypeOption {
    pub field: &'static str,
    pub problem: String,
}

/// The engine-wide settings a type falls back to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineTypeDefaults {
    pub max_attempts: i32,
    pub timeout_ms: i32,
    pub retry: RetryPolicy,
    /// An external type's lease when it declares none (`DTP_LEASE_MS`).
    pub lease: Duration,
}

/// Where a type's tasks wait to be claimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskQueue {
    /// The engine's shared queue: any engine's claim takes them, oldest due first.
    Shared,
    /// The type's own queue: claimed type by type, under a lock that counts the type's
    /// running attempts (a concurrency limit), or leased by workers (an external type).
    OwnType,
}

impl TaskQueue {
    /// The `type_queue` column's value.
    pub fn is_type_queue(self) -> bool {
        self == TaskQueue::OwnType
    }
}

/// The settings that apply to a type's tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TypeSettings {
    pub max_attempts: i32,
    pub timeout_ms: i32,
    pub max_timeout_ms: i32,
    pub retry: RetryPolicy,
    pub concurrency: Option<u32>,
}

impl TypeSettings {
    /// The queue a type's tasks wait in: its own when it has a concurrency limit or when
    /// workers outside the engine lease it.
    pub fn queue(&self, leased_by_workers: bool) -> TaskQueue {
        if leased_by_workers || self.concurrency.is_some() {
            TaskQueue::OwnType
        } else {
            TaskQueue::Shared
        }
    }
}

impl TypeOptions {
    /// The effective settings, or the first declared setting out of its range.
    pub fn resolve(&self, defaults: &EngineTypeDefaults) -> Result<TypeSettings, InvalidTypeOption> {
        let out_of = |field: &'static str, range: String, got: String| InvalidTypeOption {
            field,
            problem: format!("must be {range}, got {got}"),
        };
        if let Some(n) = self.max_attempts.filter(|n| !MAX_ATTEMPTS_RANGE.contains(n)) {
            return Err(out_of(
                "max_attempts",
                range_text(&MAX_ATTEMPTS_RANGE),
                n.to_string(),
            ));
        }
        for (field, value) in [
            ("timeout_ms", self.timeout_ms),
            ("max_timeout_ms", self.max_timeout_ms),
        ] {
            if let Some(n) = value.filter(|n| !TIMEOUT_MS_RANGE.contains(n)) {
                return Err(out_of(field, range_text(&TIMEOUT_MS_RANGE), n.to_string()));
            }
        }
        let max_timeout_ms = self.max_timeout_ms.unwrap_or(*TIMEOUT_MS_RANGE.end());
        // An undeclared timeout is the engine's, lowered to the type's ceiling; a declared
        // one above the ceiling is a mistake.
        let timeout_ms = match self.timeout_ms {
            Some(ms) if ms > max_timeout_ms => {
                return Err(InvalidTypeOption {
                    field: "timeout_ms",
                    problem: format!("must not be above max_timeout_ms ({max_timeout_ms}), got {ms}"),
                })
            }
            Some(ms) => ms,
            None => defaults.timeout_ms.min(max_timeout_ms),
        };
        for (field, value) in [
            ("backoff_base_ms", self.backoff_base_ms),
            ("backoff_max_ms", self.backoff_max_ms),
        ] {
            if let Some(n) = value.filter(|n| !BACKOFF_MS_RANGE.contains(n)) {
                return Err(out_of(field, range_text(&BACKOFF_MS_RANGE), n.to_string()));
            }
        }
        if let Some(n) = self.concurrency.filter(|n| !CONCURRENCY_RANGE.contains(n)) {
            return Err(out_of(
                "concurrency",
                range_text(&CONCURRENCY_RANGE),
                n.to_string(),
            ));
        }
        let base = self
            .backoff_base_ms
            .map_or(defaults.retry.base, Duration::from_millis);
        // A declared base above the engine's cap raises the cap with it, as the engine's own
        // settings require max >= base; a declared cap below the base is refused.
        let max = match self.backoff_max_ms {
            Some(ms) => Duration::from_millis(ms),
            None => defaults.retry.max.max(base),
        };
        if max < base {
            return Err(InvalidTypeOption {
                field: "backoff_max_ms",
                problem: format!(
                    "must not be below backoff_base_ms ({} ms), got {}",
                    base.as_millis(),
                    max.as_millis()
                ),
            });
        }
        Ok(TypeSettings {
            max_attempts: self.max_attempts.unwrap_or(defaults.max_attempts),
            timeout_ms,
            max_timeout_ms,
            retry: RetryPolicy { base, max },
            concurrency: self.concurrency,
        })
    }
}

fn range_text<T: std::fmt::Display>(range: &RangeInclusive<T>) -> String {
    format!("between {} and {}", range.start(), range.end())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> EngineTypeDefaults {
        EngineTypeDefaults {
            max_attempts: 3,
            timeout_ms: 300_000,
            retry: RetryPolicy {
                base: Duration::from_millis(1_000),
                max: Duration::from_millis(300_000),
            },
            lease: Duration::from_secs(30),
        }
    }

    #[test]
    fn type_names_are_short_and_plain() {
        for good in ["demo", "send-email", "a", "v1.resize_image", &"x".repeat(100)] {
            assert_eq!(check_type_name(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "has space",
            "ümlaut",
            "slash/ed",
            "a\u{0}",
            &"x".repeat(101),
            "${X}",
        ] {
            assert_eq!(check_type_name(bad), Err(InvalidTypeName), "{bad:?}");
        }
    }

    #[test]
    fn undeclared_settings_take_the_engine_defaults() {
        let settings = TypeOptions::default().resolve(&defaults()).unwrap();
        assert_eq!(settings.max_attempts, 3);
        assert_eq!(settings.timeout_ms, 300_000);
        assert_eq!(settings.retry, defaults().retry);
        assert_eq!(settings.concurrency, None);
        assert_eq!(settings.max_timeout_ms, 86_400_000);
        assert_eq!(settings.queue(false), TaskQueue::Shared);
        assert_eq!(settings.queue(true), TaskQueue::OwnType);
    }

    #[test]
    fn declared_settings_win_and_a_limit_gives_the_type_its_own_queue() {
        let options = TypeOptions {
            max_attempts: Some(5),
            timeout_ms: Some(10_000),
            max_timeout_ms: Some(60_000),
            backoff_base_ms: Some(50),
            backoff_max_ms: Some(400),
            concurrency: Some(20),
        };
        let settings = options.resolve(&defaults()).unwrap();
        assert_eq!(settings.max_attempts, 5);
        assert_eq!(settings.timeout_ms, 10_000);
        assert_eq!(settings.max_timeout_ms, 60_000);
        assert_eq!(settings.retry.base, Duration::from_millis(50));
        assert_eq!(settings.retry.max, Duration::from_millis(400));
        assert_eq!(settings.queue(false), TaskQueue::OwnType);
        assert!(TaskQueue::OwnType.is_type_queue() && !TaskQueue::Shared.is_type_queue());
    }

    #[test]
    fn a_timeout_ceiling_lowers_the_default_and_refuses_a_declared_timeout_above_it() {
        let ceiling = TypeOptions {
            max_timeout_ms: Some(1_000),
            ..TypeOptions::default()
        };
        let settings = ceiling.resolve(&defaults()).unwrap();
        assert_eq!((settings.timeout_ms, settings.max_timeout_ms), (1_000, 1_000));
        let above = TypeOptions {
            timeout_ms: Some(2_000),
            ..ceiling
        };
        assert_eq!(
            above.resolve(&defaults()).unwrap_err().to_string(),
            "timeout_ms: must not be above max_timeout_ms (1000), got 2000"
        );
        let zero = TypeOptions {
            max_timeout_ms: Some(0),
            ..TypeOptions::default()
        };
        assert_eq!(zero.resolve(&defaults()).unwrap_err().field, "max_timeout_ms");
    }

    #[test]
    fn a_base_above_the_engine_cap_raises_the_cap_and_a_cap_below_the_base_is_refused() {
        let high_base = TypeOptions {
            backoff_base_ms: Some(600_000),
            ..TypeOptions::default()
        };
        let settings = high_base.resolve(&defaults()).unwrap();
        assert_eq!(settings.retry.max, Duration::from_millis(600_000));
        let crossed = TypeOptions {
            backoff_base_ms: Some(500),
            backoff_max_ms: Some(100),
            ..TypeOptions::default()
        };
        let err = crossed.resolve(&defaults()).unwrap_err();
        assert_eq!(err.field, "backoff_max_ms");
        assert_eq!(
            err.to_string(),
            "backoff_max_ms: must not be below backoff_base_ms (500 ms), got 100"
        );
    }

    #[test]
    fn each_setting_out_of_range_is_named() {
        let cases = [
            (
                TypeOptions {
                    max_attempts: Some(0),
                    ..TypeOptions::default()
                },
                "max_attempts",
            ),
            (
                TypeOptions {
                    max_attempts: Some(101),
                    ..TypeOptions::default()
                },
                "max_attempts",
            ),
            (
                TypeOptions {
                    timeout_ms: Some(0),
                    ..TypeOptions::default()
                },
                "timeout_ms",
            ),
            (
                TypeOptions {
                    timeout_ms: Some(86_400_001),
                    ..TypeOptions::default()
                },
                "timeout_ms",
            ),
            (
                TypeOptions {
                    backoff_base_ms: Some(0),
                    ..TypeOptions::default()
                },
                "backoff_base_ms",
            ),
            (
                TypeOptions {
                    backoff_max_ms: Some(86_400_001),
                    ..TypeOptions::default()
                },
                "backoff_max_ms",
            ),
            (
                TypeOptions {
                    concurrency: Some(0),
                    ..TypeOptions::default()
                },
                "concurrency",
            ),
            (
                TypeOptions {
                    concurrency: Some(10_001),
                    ..TypeOptions::default()
                },
                "concurrency",
            ),
        ];
        for (options, field) in cases {
            let err = options.resolve(&defaults()).unwrap_err();
            assert_eq!(err.field, field, "{options:?}");
            assert!(err.problem.starts_with("must be between"), "{err}");
        }
        let edges = TypeOptions {
            max_attempts: Some(100),
            timeout_ms: Some(1),
            max_timeout_ms: Some(86_400_000),
            backoff_base_ms: Some(1),
            backoff_max_ms: Some(86_400_000),
            concurrency: Some(10_000),
        };
        assert!(edges.resolve(&defaults()).is_ok());
    }
}
