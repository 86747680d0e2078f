//! Keyset pagination for listings (newest first): the page size, opaque cursors and the
//! cut of each page. A cursor names the id of the last item a page returned, as lowercase
//! hex of `v1:{id}`; anything that is not exactly a cursor this module wrote is refused.

use dtp_contract::shown;

/// Items per page when the client does not say.
pub const DEFAULT_PAGE_SIZE: i64 = 20;
/// The most items one page may hold.
pub const MAX_PAGE_SIZE: i64 = 100;

/// A listing parameter the client got wrong: the code and message of its 400 answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListingParamError {
    pub code: &'static str,
    pub message: String,
}

/// Which page a client asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: i64,
    /// Only items older (smaller id) than this one.
    pub before_id: Option<i64>,
}

impl PageRequest {
    /// Checks `limit` (1 to `MAX_PAGE_SIZE`, default `DEFAULT_PAGE_SIZE`) and `cursor`.
    pub fn parse(limit: Option<i64>, cursor: Option<&str>) -> Result<Self, ListingParamError> {
        let limit = limit.unwrap_or(DEFAULT_PAGE_SIZE);
        if !(1..=MAX_PAGE_SIZE).contains(&limit) {
            return Err(ListingParamError {
                code: "INVALID_LIMIT",
                message: format!("limit must be between 1 and {MAX_PAGE_SIZE}, got {limit}"),
            });
        }
        let before_id = match cursor {
            None => None,
            Some(raw) => Some(decode_cursor(raw).ok_or_else(|| ListingParamError {
                code: "INVALID_CURSOR",
                message: format!("cursor {:?} is not one this API returned", shown(raw)),
            })?),
        };
        Ok(Self { limit, before_id })
    }

    /// Rows to read: one more than the page holds says whether another page follows.
    pub fn rows_to_fetch(&self) -> i64 {
        self.limit + 1
    }

    /// Cuts the rows read down to the page; returns it with the cursor of the next page.
    pub fn finish<T>(&self, mut rows: Vec<T>, id_of: impl Fn(&T) -> i64) -> (Vec<T>, Option<String>) {
        let page_size = usize::try_from(self.limit).unwrap_or(usize::MAX);
        let has_more = rows.len() > page_size;
        rows.truncate(page_size);
        let next = if has_more {
            rows.last().map(|r| encode_cursor(id_of(r)))
        } else {
            None
        };
        (rows, next)
    }
}

/// Checks a `type` filter: non-empty and free of NUL (which Postgres cannot compare).
pub fn check_type_filter(task_type: Option<&str>) -> Result<(), ListingParamError> {
    match task_type {
        Some(t) if t.is_empty() || t.contains('\0') => Err(ListingParamError {
            code: "INVALID_TYPE",
            message: "type must be a non-empty task type without the NUL character".into(),
        }),
        _ => Ok(()),
    }
}

/// Every cursor `encode_cursor` writes for ids below 10^18, as the API description states
/// it: hex of `v1:` and the id's decimal digits. Any string it matches is a valid cursor.
pub const CURSOR_PATTERN: &str = "^76313a3[1-9](3[0-9]){0,17}$";

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
    fn the_documented_pattern_describes_decodable_cursors() {
        assert_eq!(CURSOR_PATTERN, "^76313a3[1-9](3[0-9]){0,17}$");
        let longest = format!("76313a39{}", "39".repeat(17));
        assert_eq!(decode_cursor(&longest), Some(999_999_999_999_999_999));
        assert_eq!(decode_cursor("76313a31"), Some(1));
        for id in [1, 42, 999_999_999_999_999_999] {
            let cursor = encode_cursor(id);
            assert!(
                cursor.starts_with("76313a3") && cursor.len() <= 8 + 2 * 17,
                "{cursor}"
            );
        }
    }

    #[test]
    fn pages_are_cut_with_a_cursor_only_when_more_follow() {
        let page = PageRequest::parse(Some(2), None).unwrap();
        assert_eq!(page.rows_to_fetch(), 3);
        assert_eq!(
            page.finish(vec![9, 8, 7], |r| *r),
            (vec![9, 8], Some(encode_cursor(8)))
        );
        assert_eq!(page.finish(vec![9, 8], |r| *r), (vec![9, 8], None));
        let next = PageRequest::parse(None, Some(&encode_cursor(8))).unwrap();
        assert_eq!(
            next,
            PageRequest {
                limit: DEFAULT_PAGE_SIZE,
                before_id: Some(8)
            }
        );
        for limit in [0, -1, MAX_PAGE_SIZE + 1] {
            assert_eq!(
                PageRequest::parse(Some(limit), None).unwrap_err().code,
                "INVALID_LIMIT"
            );
        }
        assert_eq!(
            PageRequest::parse(None, Some("zz")).unwrap_err().code,
            "INVALID_CURSOR"
        );
        assert_eq!(check_type_filter(Some("")).unwrap_err().code, "INVALID_TYPE");
        assert!(check_type_filter(Some("demo")).is_ok() && check_type_filter(None).is_ok());
    }

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
