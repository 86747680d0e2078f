//! Keyset pagination for listings (newest first): the page size, cursors and the cut of each
//! page. A cursor carries the id of the last item a page returned, sealed with an HMAC under
//! the deployment's cursor key and bound to the listing it came from (service, route, filters,
//! tenant), so it can be neither forged nor replayed against another listing.

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use dtp_contract::shown;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Items per page when the client does not say.
pub const DEFAULT_PAGE_SIZE: i64 = 20;
/// The most items one page may hold.
pub const MAX_PAGE_SIZE: i64 = 100;

/// Every cursor this module writes, as the API descriptions state it: 24 bytes (the id and
/// a 16-byte tag) in unpadded base64url.
pub const CURSOR_PATTERN: &str = "^[A-Za-z0-9_-]{32}$";

/// Bytes of HMAC-SHA256 a cursor keeps: 128 bits cannot be guessed.
const TAG_BYTES: usize = 16;

/// A listing parameter the client got wrong: the code and message of its 400 answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListingParamError {
    pub code: &'static str,
    pub message: String,
}

/// The deployment's key for sealing cursors (the `cursor` deployment secret): the same in
/// every process of a service, so a cursor from one is good at any other.
#[derive(Clone)]
pub struct CursorKey(Arc<[u8; 32]>);

impl CursorKey {
    pub fn new(bytes: [u8; 32]) -> Self {
        Self(Arc::new(bytes))
    }

    /// A listing `scope` names: the parts (service, route, each filter's value, tenant) are
    /// fixed at the listing's entry, and a cursor is good only where all of them match.
    pub fn listing<I, S>(&self, scope: I) -> Listing
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(self.0.as_slice())
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        for part in scope {
            // Length-prefixed, so that no two different scopes feed the same bytes.
            let part = part.as_ref().as_bytes();
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        Listing { mac }
    }
}

impl std::fmt::Debug for CursorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CursorKey([redacted])")
    }
}

/// One listing's cursors: sealing and opening them.
#[derive(Clone)]
pub struct Listing {
    mac: Hmac<Sha256>,
}

impl Listing {
    fn tag(&self, id: i64) -> [u8; TAG_BYTES] {
        let mut mac = self.mac.clone();
        mac.update(&id.to_be_bytes());
        let full = mac.finalize().into_bytes();
        let mut tag = [0; TAG_BYTES];
        tag.copy_from_slice(&full[..TAG_BYTES]);
        tag
    }

    /// The cursor that continues this listing after the item with `last_id`.
    pub fn seal(&self, last_id: i64) -> String {
        let mut bytes = [0; 8 + TAG_BYTES];
        bytes[..8].copy_from_slice(&last_id.to_be_bytes());
        bytes[8..].copy_from_slice(&self.tag(last_id));
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The id a cursor names, or `None` unless this listing sealed it for a positive id.
    pub fn open(&self, cursor: &str) -> Option<i64> {
        if cursor.len() != 32 {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
        let (id, tag) = bytes.split_at_checked(8)?;
        let id = i64::from_be_bytes(id.try_into().ok()?);
        let expected = self.tag(id);
        // Compared in constant time: how long a refusal takes says nothing of the tag.
        let same =
            tag.len() == TAG_BYTES && tag.iter().zip(expected).fold(0, |acc, (a, b)| acc | (a ^ b)) == 0;
        // Canonical text only: base64 allows other spellings of the same bytes in the last char.
        (same && id > 0 && URL_SAFE_NO_PAD.encode(&bytes) == cursor).then_some(id)
    }
}

/// Which page a client asks for, and how to write the next page's cursor.
#[derive(Clone)]
pub struct PageRequest {
    pub limit: i64,
    /// Only items older (smaller id) than this one.
    pub before_id: Option<i64>,
    listing: Listing,
}

impl PageRequest {
    /// Checks `limit` (1 to `MAX_PAGE_SIZE`, default `DEFAULT_PAGE_SIZE`) and `cursor`, which
    /// `listing` must have sealed.
    pub fn parse(
        limit: Option<i64>,
        cursor: Option<&str>,
        listing: Listing,
    ) -> Result<Self, ListingParamError> {
        let limit = limit.unwrap_or(DEFAULT_PAGE_SIZE);
        if !(1..=MAX_PAGE_SIZE).contains(&limit) {
            return Err(ListingParamError {
                code: "INVALID_LIMIT",
                message: format!("limit must be between 1 and {MAX_PAGE_SIZE}, got {limit}"),
            });
        }
        let before_id = match cursor {
            None => None,
            Some(raw) => Some(listing.open(raw).ok_or_else(|| ListingParamError {
                code: "INVALID_CURSOR",
                message: format!(
                    "cursor {:?} is not one this listing returned (with these filters)",
                    shown(raw)
                ),
            })?),
        };
        Ok(Self {
            limit,
            before_id,
            listing,
        })
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
            rows.last().map(|r| self.listing.seal(id_of(r)))
        } else {
            None
        };
        (rows, next)
    }
}

impl std::fmt::Debug for PageRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageRequest")
            .field("limit", &self.limit)
            .field("before_id", &self.before_id)
            .finish_non_exhaustive()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> CursorKey {
        CursorKey::new([byte; 32])
    }

    fn tasks() -> Listing {
        key(1).listing(["dtp", "/tasks", "PENDING", ""])
    }

    #[test]
    fn cursors_round_trip_and_match_the_documented_pattern() {
        let listing = tasks();
        for id in [1, 42, 1_000_000, i64::MAX] {
            let cursor = listing.seal(id);
            assert_eq!(listing.open(&cursor), Some(id), "{cursor}");
            assert_eq!(cursor.len(), 32);
            assert!(
                cursor
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                "{cursor}"
            );
        }
        assert_eq!(CURSOR_PATTERN, "^[A-Za-z0-9_-]{32}$");
    }

    #[test]
    fn a_cursor_is_good_only_for_its_key_and_listing() {
        let cursor = tasks().seal(42);
        assert_eq!(
            key(2).listing(["dtp", "/tasks", "PENDING", ""]).open(&cursor),
            None
        );
        assert_eq!(
            key(1)
                .listing(["taskpilot", "/tasks", "PENDING", ""])
                .open(&cursor),
            None
        );
        assert_eq!(
            key(1).listing(["dtp", "/tasks", "FAILED", ""]).open(&cursor),
            None
        );
        // Length prefixes keep ("ab", "c") apart from ("a", "bc").
        let split = key(1).listing(["ab", "c"]).seal(7);
        assert_eq!(key(1).listing(["a", "bc"]).open(&split), None);
    }

    #[test]
    fn tampered_or_foreign_cursors_are_refused() {
        let listing = tasks();
        let good = listing.seal(42);
        let mut flipped = good.clone().into_bytes();
        flipped[3] = if flipped[3] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap();
        let mut bytes = URL_SAFE_NO_PAD.decode(&good).unwrap();
        bytes[7] = 43;
        let other_id = URL_SAFE_NO_PAD.encode(&bytes);
        for bad in [
            String::new(),
            "42".into(),
            flipped,
            other_id,
            good[1..].into(),
            format!("{good}A"),
            good.to_uppercase(),
            listing.seal(0),
            listing.seal(-5),
            "76313a3432".into(),
            "é".repeat(16),
        ] {
            assert_eq!(listing.open(&bad), None, "{bad:?}");
        }
    }

    #[test]
    fn pages_are_cut_with_a_cursor_only_when_more_follow() {
        let page = PageRequest::parse(Some(2), None, tasks()).unwrap();
        assert_eq!(page.rows_to_fetch(), 3);
        assert_eq!(
            page.finish(vec![9, 8, 7], |r| *r),
            (vec![9, 8], Some(tasks().seal(8)))
        );
        assert_eq!(page.finish(vec![9, 8], |r| *r), (vec![9, 8], None));
        let next = PageRequest::parse(None, Some(&tasks().seal(8)), tasks()).unwrap();
        assert_eq!((next.limit, next.before_id), (DEFAULT_PAGE_SIZE, Some(8)));
        for limit in [0, -1, MAX_PAGE_SIZE + 1] {
            assert_eq!(
                PageRequest::parse(Some(limit), None, tasks()).unwrap_err().code,
                "INVALID_LIMIT"
            );
        }
        assert_eq!(
            PageRequest::parse(None, Some("zz"), tasks()).unwrap_err().code,
            "INVALID_CURSOR"
        );
        assert_eq!(check_type_filter(Some("")).unwrap_err().code, "INVALID_TYPE");
        assert!(check_type_filter(Some("demo")).is_ok() && check_type_filter(None).is_ok());
    }
}
