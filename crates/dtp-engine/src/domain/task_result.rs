//! What a task may keep as its `result`: JSON that `jsonb` stores and gives back, at most
//! 64 KiB of it. A handler or a worker that produces more fails its attempt for good,
//! since running it again would produce the same.

use dtp_contract::{check_storable, UnstorableJson, MAX_RESULT_BYTES};

/// Why a result cannot be kept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResultRejected {
    #[error("the result is {0} bytes of JSON; at most {MAX_RESULT_BYTES} are kept")]
    TooLarge(usize),
    #[error("the result {0}")]
    Unstorable(UnstorableJson),
}

/// Checks a result before it is written.
pub fn check_result(result: &serde_json::Value) -> Result<(), ResultRejected> {
    let bytes = serde_json::to_vec(result).map_or(usize::MAX, |b| b.len());
    if bytes > MAX_RESULT_BYTES {
        return Err(ResultRejected::TooLarge(bytes));
    }
    check_storable(result).map_err(ResultRejected::Unstorable)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keeps_storable_results_up_to_64_kib() {
        assert_eq!(check_result(&json!({"sent": true})), Ok(()));
        // `"` + n characters + `"`: exactly the limit, then one byte over.
        let at_limit = json!("x".repeat(MAX_RESULT_BYTES - 2));
        assert_eq!(check_result(&at_limit), Ok(()));
        let over = json!("x".repeat(MAX_RESULT_BYTES - 1));
        assert_eq!(
            check_result(&over),
            Err(ResultRejected::TooLarge(MAX_RESULT_BYTES + 1))
        );
        assert_eq!(
            check_result(&json!({"a": "\u{0}"})),
            Err(ResultRejected::Unstorable(UnstorableJson::NulCharacter))
        );
        assert_eq!(
            ResultRejected::TooLarge(70_000).to_string(),
            "the result is 70000 bytes of JSON; at most 65536 are kept"
        );
    }
}
