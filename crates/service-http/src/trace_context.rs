//! W3C Trace Context (`traceparent`, `tracestate`): read from a request, continued with a
//! span id of our own, and written onto the calls we make, so one trace id follows a
//! request through both services' logs.

use std::fmt;

pub const TRACEPARENT_HEADER: &str = "traceparent";
pub const TRACESTATE_HEADER: &str = "tracestate";
/// The spec's limit on `tracestate`; longer values are dropped rather than cut.
const MAX_TRACESTATE_CHARS: usize = 512;
const SAMPLED_FLAG: u8 = 0x01;

/// This service's position in a trace: the trace id and our own span id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    trace_id: u128,
    span_id: u64,
    flags: u8,
}

impl TraceParent {
    /// Parses a `traceparent` header. Version 00 must be exactly four fields; a later
    /// version may append fields, which are ignored (as the spec asks). `None` when invalid.
    pub fn parse(header: &str) -> Option<Self> {
        let header = header.trim();
        let mut fields = header.split('-');
        let version = fields.next()?;
        let trace_id = fields.next()?;
        let span_id = fields.next()?;
        let flags = fields.next()?;
        let extra = fields.next();
        let hex = |s: &str, len: usize| {
            s.len() == len
                && s.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        if !hex(version, 2) || version == "ff" || !hex(trace_id, 32) || !hex(span_id, 16) || !hex(flags, 2) {
            return None;
        }
        if version == "00" && extra.is_some() {
            return None;
        }
        let parsed = Self {
            trace_id: u128::from_str_radix(trace_id, 16).ok()?,
            span_id: u64::from_str_radix(span_id, 16).ok()?,
            flags: u8::from_str_radix(flags, 16).ok()?,
        };
        (parsed.trace_id != 0 && parsed.span_id != 0).then_some(parsed)
    }

    /// A new trace, for a request that arrived without a valid `traceparent`.
    pub fn start() -> Self {
        Self {
            trace_id: nonzero(rand::random()),
            span_id: nonzero(rand::random()),
            flags: 0,
        }
    }

    /// Our span within the caller's trace: same trace and sampling decision, new span id.
    pub fn child(&self) -> Self {
        Self {
            span_id: nonzero(rand::random()),
            flags: self.flags & SAMPLED_FLAG,
            ..*self
        }
    }

    /// Continues the caller's trace when `header` is valid, else starts a new one.
    pub fn continue_or_start(header: Option<&str>) -> Self {
        header
            .and_then(Self::parse)
            .map_or_else(Self::start, |parent| parent.child())
    }

    /// The trace id as the 32 hex digits logs and headers show.
    pub fn trace_id(&self) -> String {
        format!("{:032x}", self.trace_id)
    }

    pub fn span_id(&self) -> String {
        format!("{:016x}", self.span_id)
    }
}

/// The `traceparent` value for calls made from this span (this span is their parent).
impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{:032x}-{:016x}-{:02x}",
            self.trace_id, self.span_id, self.flags
        )
    }
}

/// A `tracestate` worth passing on unchanged: printable ASCII within the spec's length.
pub fn forwardable_tracestate(header: &str) -> Option<String> {
    let ok = !header.is_empty()
        && header.len() <= MAX_TRACESTATE_CHARS
        && header.bytes().all(|b| (0x20..0x7f).contains(&b));
    ok.then(|| header.to_owned())
}

fn nonzero<T: PartialEq + From<u8>>(value: T) -> T {
    if value == T::from(0) {
        T::from(1)
    } else {
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn continues_a_valid_trace_with_a_span_of_its_own() {
        let parent = TraceParent::parse(EXAMPLE).unwrap();
        assert_eq!(parent.to_string(), EXAMPLE);
        let ours = TraceParent::continue_or_start(Some(EXAMPLE));
        assert_eq!(ours.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_ne!(ours.span_id(), "00f067aa0ba902b7");
        assert!(ours.to_string().ends_with("-01"), "the sampling decision is kept");
    }

    #[test]
    fn refuses_malformed_headers() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn later_versions_may_append_fields() {
        let future = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-more";
        assert!(TraceParent::parse(future).is_some());
    }

    #[test]
    fn starts_a_fresh_trace_when_there_is_none() {
        let a = TraceParent::continue_or_start(None);
        let b = TraceParent::continue_or_start(Some("garbage"));
        assert_ne!(a.trace_id(), b.trace_id());
        assert_eq!(a.to_string().len(), 55);
        assert!(TraceParent::parse(&a.to_string()).is_some());
    }

    #[test]
    fn tracestate_is_passed_on_only_when_sane() {
        assert_eq!(
            forwardable_tracestate("congo=t61rcWkgMzE").as_deref(),
            Some("congo=t61rcWkgMzE")
        );
        assert_eq!(forwardable_tracestate(""), None);
        assert_eq!(forwardable_tracestate(&"a".repeat(600)), None);
        assert_eq!(forwardable_tracestate("bad\u{7}"), None);
    }
}
