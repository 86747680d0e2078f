//! RFC 3339 UTC timestamps with exactly millisecond precision, the format of every
//! timestamp on the wire (`2026-01-02T03:04:05.678Z`).

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serializer};

pub fn serialize<S: Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&at.to_rfc3339_opts(SecondsFormat::Millis, true))
}

pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<DateTime<Utc>, D::Error> {
    DateTime::<Utc>::deserialize(deserializer)
}

/// The same format for optional timestamps (`null` when absent).
pub mod option {
    use super::*;

    pub fn serialize<S: Serializer>(at: &Option<DateTime<Utc>>, serializer: S) -> Result<S::Ok, S::Error> {
        match at {
            Some(at) => super::serialize(at, serializer),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<DateTime<Utc>>, D::Error> {
        Option::<DateTime<Utc>>::deserialize(deserializer)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    #[derive(serde::Serialize, serde::Deserialize)]
    struct Stamp {
        #[serde(with = "super")]
        at: chrono::DateTime<chrono::Utc>,
        #[serde(with = "super::option")]
        maybe: Option<chrono::DateTime<chrono::Utc>>,
    }

    #[test]
    fn writes_milliseconds_in_utc() {
        let at = chrono::Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap()
            + chrono::Duration::microseconds(678_901);
        let json = serde_json::to_string(&Stamp { at, maybe: None }).unwrap();
        assert_eq!(json, r#"{"at":"2026-01-02T03:04:05.678Z","maybe":null}"#);
        let back: Stamp = serde_json::from_str(&json).unwrap();
        assert_eq!(back.at.timestamp_millis(), at.timestamp_millis());
    }
}
