//! What a task may keep as JSON of its own (a `result`, a worker's heartbeat details): JSON
//! that `jsonb` stores and gives back, at most 64 KiB of it. A handler or a worker whose
//! result is refused fails its attempt for good, since running it again would produce the same.

use dtp_contract::{check_storable, UnstorableJson, MAX_RESULT_BYTES};

/// Why a piece of JSON cannot be kept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonNotKept {
    #[error("is {0} bytes of JSON; at most {MAX_RESULT_BYTES} are kept")]
    TooLarge(usize),
    #[error("{0}")]
    Unstorable(UnstorableJson),
}

/// Checks JSON before it is written.
pub fn check_kept(value: &serde_json::Value) -> Result<(), JsonNotKept> {
    let bytes = dtp_contract::json_size(value);
    if bytes > MAX_RESULT_BYTES {
        return Err(JsonNotKept::TooLarge(bytes));
    }
    check_storable(value).map_err(JsonNotKept::Unstorable)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keeps_storable_json_up_to_64_kib() {
        assert_eq!(check_kept(&json!({"sent": true})), Ok(()));
        // `"` + n characters + `"`: exactly the limit, then one byte over.
        let at_limit = json!("x".repeat(MAX_RESULT_BYTES - 2));
        assert_eq!(check_kept(&at_limit), Ok(()));
        let over = json!("x".repeat(MAX_RESULT_BYTES - 1));
        assert_eq!(
            check_kept(&over),
            Err(JsonNotKept::TooLarge(MAX_RESULT_BYTES + 1))
        );
        assert_eq!(
            check_kept(&json!({"a": "\u{0}"})),
            Err(JsonNotKept::Unstorable(UnstorableJson::NulCharacter))
        );
        assert_eq!(
            JsonNotKept::TooLarge(70_000).to_string(),
            "is 70000 bytes of JSON; at most 65536 are kept"
        );
    }
}
