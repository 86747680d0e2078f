//! Typed reading of settings from the environment, with defaults and one clear error
//! naming the variable when a value does not parse.

use std::str::FromStr;
use std::time::Duration;

/// A setting that is present but unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {name}={value:?}: {reason}")]
pub struct ConfigError {
    pub name: String,
    pub value: String,
    pub reason: String,
}

/// Where settings come from: the process environment, or a map in tests.
pub trait SettingSource {
    fn get(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl SettingSource for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.trim().is_empty())
    }
}

/// Fixed settings, for tests.
pub struct FixedSettings<'a>(pub &'a [(&'a str, &'a str)]);

impl SettingSource for FixedSettings<'_> {
    fn get(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    }
}

/// A string setting.
pub fn string(source: &dyn SettingSource, name: &str, default: &str) -> String {
    source.get(name).unwrap_or_else(|| default.to_owned())
}

/// A setting parsed with `FromStr`, checked against `valid`.
pub fn parsed<T>(
    source: &dyn SettingSource,
    name: &str,
    default: T,
    valid: impl Fn(&T) -> Result<(), String>,
) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    let Some(raw) = source.get(name) else {
        return Ok(default);
    };
    let error = |reason: String| ConfigError {
        name: name.to_owned(),
        value: raw.clone(),
        reason,
    };
    let value = raw.trim().parse::<T>().map_err(|e| error(e.to_string()))?;
    valid(&value).map_err(error)?;
    Ok(value)
}

/// A `valid` check for `parsed`: `n` lies in `min..=max`.
pub fn in_range(n: usize, min: usize, max: usize) -> Result<(), String> {
    if (min..=max).contains(&n) {
        Ok(())
    } else {
        Err(format!("must be between {min} and {max}"))
    }
}

/// A duration given in whole milliseconds, at least `min_ms`.
pub fn millis(
    source: &dyn SettingSource,
    name: &str,
    default: Duration,
    min_ms: u64,
) -> Result<Duration, ConfigError> {
    let default_ms = u64::try_from(default.as_millis()).unwrap_or(u64::MAX);
    let ms = parsed(source, name, default_ms, |ms| {
        if *ms >= min_ms {
            Ok(())
        } else {
            Err(format!("must be at least {min_ms} ms"))
        }
    })?;
    Ok(Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_defaults_values_and_errors() {
        let source = &FixedSettings(&[("A", "5"), ("B", "x"), ("C", "0")]);
        assert_eq!(string(source, "NONE", "d"), "d");
        assert_eq!(parsed(source, "A", 1u32, |_| Ok(())), Ok(5));
        assert_eq!(parsed(source, "NONE", 1u32, |_| Ok(())), Ok(1));
        let err = parsed(source, "B", 1u32, |_| Ok(())).unwrap_err();
        assert_eq!(err.to_string(), "invalid B=\"x\": invalid digit found in string");
        assert_eq!(
            millis(source, "A", Duration::ZERO, 1),
            Ok(Duration::from_millis(5))
        );
        assert!(millis(source, "C", Duration::ZERO, 1).is_err());
    }
}
