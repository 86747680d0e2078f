//! Positions in the change feed: an event's writing transaction and its sequence number,
//! ordered in that order, sent to clients as an opaque cursor. What a page's next cursor is,
//! and whether a cursor reaches back past what retention deleted.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

/// Where an event sits in the feed; the feed is read in increasing order of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FeedPosition {
    pub xact: i64,
    pub position: i64,
}

/// A cursor a client sent that no cursor of the feed can be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("after must be a cursor of this feed or \"latest\"")]
pub struct MalformedCursor;

/// Where a read of the feed starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedStart {
    /// The oldest event retention has kept.
    Oldest,
    /// After every event final now.
    Latest,
    /// After this position.
    After(FeedPosition),
}

impl FeedStart {
    /// Reads the `after` parameter.
    pub fn parse(after: Option<&str>) -> Result<Self, MalformedCursor> {
        match after {
            None => Ok(FeedStart::Oldest),
            Some("latest") => Ok(FeedStart::Latest),
            Some(cursor) => FeedPosition::parse(cursor).map(FeedStart::After),
        }
    }
}

const CURSOR_BYTES: usize = 16;

impl FeedPosition {
    /// Before every event.
    pub const START: FeedPosition = FeedPosition { xact: 0, position: 0 };

    /// The last position of every transaction older than `xmin` (the oldest still running):
    /// everything up to it is final, and every event still to be written comes after it.
    pub fn final_before(xmin: i64) -> Self {
        FeedPosition {
            xact: xmin.saturating_sub(1),
            position: i64::MAX,
        }
    }

    pub fn to_cursor(self) -> String {
        let mut bytes = [0u8; CURSOR_BYTES];
        bytes[..8].copy_from_slice(&self.xact.to_be_bytes());
        bytes[8..].copy_from_slice(&self.position.to_be_bytes());
        URL_SAFE_NO_PAD.encode(bytes)
    }

    pub fn parse(cursor: &str) -> Result<Self, MalformedCursor> {
        let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| MalformedCursor)?;
        let bytes: [u8; CURSOR_BYTES] = bytes.try_into().map_err(|_| MalformedCursor)?;
        let half =
            |range: std::ops::Range<usize>| i64::from_be_bytes(bytes[range].try_into().expect("eight bytes"));
        let position = FeedPosition {
            xact: half(0..8),
            position: half(8..16),
        };
        if position.xact < 0 || position.position < 0 {
            return Err(MalformedCursor);
        }
        Ok(position)
    }
}

/// What a read returned, and how far it knows the feed to be final.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageBounds {
    /// Where the read started.
    pub after: FeedPosition,
    /// The last event returned, if any.
    pub last: Option<FeedPosition>,
    /// Whether the page holds as many events as were asked for (more may follow at once).
    pub full: bool,
    /// Every event up to here was final when the page was read.
    pub final_up_to: FeedPosition,
}

impl PageBounds {
    /// The cursor to read on from. A page that is not full holds every final event after
    /// `after` that the read asked for, so the next read may start at the final bound, past
    /// events it filtered out.
    pub fn next(&self) -> FeedPosition {
        let reached = self.last.unwrap_or(self.after);
        if self.full {
            reached
        } else {
            reached.max(self.final_up_to)
        }
    }
}

/// Whether a read from `after` would miss events retention deleted (all up to `deleted_up_to`).
pub fn is_expired(after: FeedPosition, deleted_up_to: FeedPosition) -> bool {
    after < deleted_up_to
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(xact: i64, position: i64) -> FeedPosition {
        FeedPosition { xact, position }
    }

    #[test]
    fn cursors_round_trip_and_refuse_what_they_never_are() {
        for p in [
            FeedPosition::START,
            at(1, 2),
            at(i64::MAX, i64::MAX),
            FeedPosition::final_before(10),
        ] {
            assert_eq!(FeedPosition::parse(&p.to_cursor()), Ok(p));
        }
        for bad in ["", "latest!", "AAAA", "not base64 at all!!!!!", &"A".repeat(40)] {
            assert_eq!(FeedPosition::parse(bad), Err(MalformedCursor), "{bad:?}");
        }
        let negative = URL_SAFE_NO_PAD.encode([0xFFu8; 16]);
        assert_eq!(FeedPosition::parse(&negative), Err(MalformedCursor));
    }

    #[test]
    fn positions_order_by_transaction_then_sequence() {
        // A later sequence number of an older transaction comes first.
        assert!(at(5, 900) < at(6, 1));
        assert!(at(5, 1) < at(5, 2));
        assert!(at(5, 3) < FeedPosition::final_before(6));
        assert!(FeedPosition::final_before(6) < at(6, 0));
    }

    #[test]
    fn the_start_is_read_from_after() {
        assert_eq!(FeedStart::parse(None), Ok(FeedStart::Oldest));
        assert_eq!(FeedStart::parse(Some("latest")), Ok(FeedStart::Latest));
        let p = at(3, 4);
        assert_eq!(FeedStart::parse(Some(&p.to_cursor())), Ok(FeedStart::After(p)));
        assert_eq!(FeedStart::parse(Some("LATEST")), Err(MalformedCursor));
    }

    #[test]
    fn a_full_page_goes_on_from_its_last_event() {
        let bounds = PageBounds {
            after: at(1, 1),
            last: Some(at(4, 9)),
            full: true,
            final_up_to: FeedPosition::final_before(10),
        };
        assert_eq!(bounds.next(), at(4, 9));
    }

    #[test]
    fn a_page_that_is_not_full_goes_on_from_what_is_final() {
        let final_up_to = FeedPosition::final_before(10);
        let partial = PageBounds {
            after: at(1, 1),
            last: Some(at(4, 9)),
            full: false,
            final_up_to,
        };
        assert_eq!(partial.next(), final_up_to);
        let empty = PageBounds {
            last: None,
            ..partial
        };
        assert_eq!(empty.next(), final_up_to);
        // A cursor already past the final bound (handed out when a page was full) stays.
        let ahead = PageBounds {
            after: at(20, 1),
            last: None,
            full: false,
            final_up_to,
        };
        assert_eq!(ahead.next(), at(20, 1));
    }

    #[test]
    fn a_cursor_before_what_retention_deleted_is_expired() {
        assert!(is_expired(at(3, 1), at(3, 2)));
        assert!(!is_expired(at(3, 2), at(3, 2)));
        assert!(!is_expired(FeedPosition::START, FeedPosition::START));
    }
}
