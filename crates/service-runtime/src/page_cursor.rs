//! Opaque page cursors for keyset-paginated listings (newest first): a cursor names the
//! id of the last item a page returned, as lowercase hex of `v1:{id}`. Clients pass it
//! back unchanged; anything that is not exactly a cursor this module wrote is refused.

/// Version tag inside every cursor, so that the format can change without misreading old ones.
const CURSOR_VERSION_PREFIX: &str = "v1:";

/// The cursor that continues a listing after the item with `last_id`.
pub fn encode_cursor(last_id: i64) -> String {
    format!("{CURSOR_VERSION_PREFIX}{last_id}")
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The id a cursor names, or `None` when `cursor` was not written by `encode_cursor`
/// for a positive id (tampered, truncated, another format).
pub fn decode_cursor(cursor: &str) -> Option<i64> {
    if cursor.len() % 2 != 0 || !cursor.is_ascii() {
        return None;
    }
    let bytes = (0..cursor.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&cursor[i..i + 2], 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    let text = String::from_utf8(bytes).ok()?;
    let id = text.strip_prefix(CURSOR_VERSION_PREFIX)?.parse::<i64>().ok()?;
    // Only the canonical spelling is accepted: no sign, leading zeros or uppercase hex.
    (id > 0 && encode_cursor(id) == cursor).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        for id in [1, 42, 1_000_000, i64::MAX] {
            let cursor = encode_cursor(id);
            assert_eq!(decode_cursor(&cursor), Some(id), "{cursor}");
        }
        assert_eq!(encode_cursor(2), "76313a32");
    }

    #[test]
    fn anything_else_is_refused() {
        let good = encode_cursor(42);
        let bad = [
            String::new(),
            "42".into(),
            "zzz".into(),
            good[1..].into(),
            format!("{good}0"),
            good.to_uppercase(),
            encode_cursor(0),
            encode_cursor(-5),
            hex("v2:42"),
            hex("v1:+42"),
            hex("v1:042"),
            hex("v1:"),
            hex("v1:99999999999999999999"),
            "76313a3é".into(),
        ];
        for cursor in bad {
            assert_eq!(decode_cursor(&cursor), None, "{cursor:?}");
        }
    }

    fn hex(text: &str) -> String {
        text.bytes().map(|b| format!("{b:02x}")).collect()
    }
}
