//! Integers written as `5` or `5.0`: JSON (and JSON Schema's `integer`) count both as the
//! same whole number, so a client generated from the API description may send either.

use serde::de::Error;
use serde::{Deserialize, Deserializer};

/// An optional `i32` that also accepts a float with no fractional part.
pub fn option_i32<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i32>, D::Error> {
    let Some(number) = Option::<serde_json::Number>::deserialize(deserializer)? else {
        return Ok(None);
    };
    whole_i32(&number)
        .map(Some)
        .ok_or_else(|| D::Error::custom(format!("expected a whole number within 32 bits, got {number}")))
}

fn whole_i32(number: &serde_json::Number) -> Option<i32> {
    if let Some(int) = number.as_i64() {
        return i32::try_from(int).ok();
    }
    let float = number.as_f64()?;
    let in_range = (f64::from(i32::MIN)..=f64::from(i32::MAX)).contains(&float);
    #[expect(
        clippy::cast_possible_truncation,
        reason = "whole and within i32's range, checked above"
    )]
    (float.fract() == 0.0 && in_range).then_some(float as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Limit {
        #[serde(default, deserialize_with = "option_i32")]
        n: Option<i32>,
    }

    fn read(json: &str) -> Result<Option<i32>, serde_json::Error> {
        serde_json::from_str::<Limit>(json).map(|l| l.n)
    }

    #[test]
    fn accepts_whole_numbers_in_either_spelling() {
        assert_eq!(read(r#"{"n": 5}"#).unwrap(), Some(5));
        assert_eq!(read(r#"{"n": 5.0}"#).unwrap(), Some(5));
        assert_eq!(read(r#"{"n": -7e2}"#).unwrap(), Some(-700));
        assert_eq!(read(r#"{"n": null}"#).unwrap(), None);
        assert_eq!(read("{}").unwrap(), None);
    }

    #[test]
    fn refuses_fractions_and_numbers_beyond_32_bits() {
        for bad in [
            r#"{"n": 5.5}"#,
            r#"{"n": 3000000000}"#,
            r#"{"n": 1e300}"#,
            r#"{"n": "5"}"#,
        ] {
            assert!(read(bad).is_err(), "{bad}");
        }
    }
}
