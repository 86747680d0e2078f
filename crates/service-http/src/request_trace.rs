//! Request tracing middleware: every request gets an id (the caller's `X-Request-Id` when
//! it is sane, a fresh one otherwise) and a place in a W3C trace (the caller's `traceparent`
//! continued, or a new trace), a span carrying both, one log line at the end, and the id
//! echoed on the response. Handlers read them through the `RequestContext` extractor.

use std::future::{ready, Ready};
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use tracing::Instrument;

use crate::metrics::HttpMetrics;
use crate::trace_context::{forwardable_tracestate, TraceParent, TRACEPARENT_HEADER, TRACESTATE_HEADER};

pub const REQUEST_ID_HEADER: &str = "x-request-id";
const MAX_REQUEST_ID_CHARS: usize = 128;

/// The request being served, as far as tracing goes: its id and our span in its trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestContext {
    pub request_id: String,
    pub trace: TraceParent,
    /// The caller's `tracestate`, passed on unchanged.
    pub trace_state: Option<String>,
}

impl RequestContext {
    fn from_headers(headers: &HeaderMap) -> Self {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        Self {
            request_id: request_id_from(header(REQUEST_ID_HEADER)),
            trace: TraceParent::continue_or_start(header(TRACEPARENT_HEADER)),
            trace_state: header(TRACESTATE_HEADER).and_then(forwardable_tracestate),
        }
    }

    /// The context of work a background service starts on its own (no incoming request):
    /// a new request id and a new trace.
    pub fn started_here() -> Self {
        Self::from_headers(&HeaderMap::new())
    }

    /// The headers a call made on behalf of this request carries: the same request id, and
    /// our span as the parent of the callee's.
    pub fn forwarded_headers(&self) -> Vec<(&'static str, String)> {
        let mut headers = vec![
            (REQUEST_ID_HEADER, self.request_id.clone()),
            (TRACEPARENT_HEADER, self.trace.to_string()),
        ];
        if let Some(state) = &self.trace_state {
            headers.push((TRACESTATE_HEADER, state.clone()));
        }
        headers
    }
}

fn request_id_from(header: Option<&str>) -> String {
    header
        .filter(|v| is_sane(v))
        .map(str::to_owned)
        .unwrap_or_else(|| format!("{:032x}", rand::random::<u128>()))
}

fn is_sane(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_REQUEST_ID_CHARS
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

impl FromRequest for RequestContext {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let context = req
            .extensions()
            .get::<RequestContext>()
            .cloned()
            .unwrap_or_else(|| RequestContext::from_headers(req.headers()));
        ready(Ok(context))
    }
}

/// A request's method as a label of a closed set: a made-up method is `other`, so that
/// clients cannot grow the metrics (and the memory behind them) without bound.
pub fn method_label(method: &actix_web::http::Method) -> &'static str {
    use actix_web::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// The middleware; install with `App::wrap(actix_web::middleware::from_fn(trace_requests))`.
pub async fn trace_requests(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let context = RequestContext::from_headers(req.headers());
    let http_metrics = req.app_data::<web::Data<HttpMetrics>>().cloned();
    let method = method_label(req.method());
    req.extensions_mut().insert(context.clone());
    let route = req.match_pattern().unwrap_or_else(|| "unmatched".to_owned());
    let span = tracing::info_span!(
        "request",
        request_id = %context.request_id,
        trace_id = %context.trace.trace_id(),
        span_id = %context.trace.span_id(),
        method = %method,
        route = %route,
    );
    let started = Instant::now();
    let result = next.call(req).instrument(span.clone()).await;
    let elapsed_ms = started.elapsed().as_secs_f64() * 1_000.0;
    let _entered = span.enter();
    match result {
        Ok(mut response) => {
            let status = response.status().as_u16();
            if let Some(metrics) = &http_metrics {
                metrics.observe(&route, method, status, elapsed_ms / 1_000.0);
            }
            if let Ok(value) = HeaderValue::from_str(&context.request_id) {
                response
                    .headers_mut()
                    .insert(HeaderName::from_static(REQUEST_ID_HEADER), value);
            }
            if status >= 500 {
                tracing::warn!(status, elapsed_ms, "request failed");
            } else {
                tracing::info!(status, elapsed_ms, "request served");
            }
            Ok(response)
        }
        Err(e) => {
            tracing::warn!(error = %e, elapsed_ms, "request errored");
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_sane_ids_and_replaces_others() {
        assert_eq!(request_id_from(Some("abc-123_x.y:z")), "abc-123_x.y:z");
        assert_eq!(request_id_from(Some("has spaces")).len(), 32);
        assert_eq!(request_id_from(Some(&"a".repeat(200))).len(), 32);
        assert_ne!(request_id_from(None), request_id_from(None));
    }

    #[test]
    fn forwards_the_request_id_and_its_own_span_in_the_callers_trace() {
        let mut headers = HeaderMap::new();
        headers.insert(
            HeaderName::from_static(REQUEST_ID_HEADER),
            HeaderValue::from_static("req-1"),
        );
        headers.insert(
            HeaderName::from_static(TRACEPARENT_HEADER),
            HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        );
        headers.insert(
            HeaderName::from_static(TRACESTATE_HEADER),
            HeaderValue::from_static("congo=t61"),
        );
        let context = RequestContext::from_headers(&headers);
        let forwarded = context.forwarded_headers();
        assert_eq!(forwarded[0], (REQUEST_ID_HEADER, "req-1".to_owned()));
        let traceparent = &forwarded[1].1;
        assert!(traceparent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        assert!(!traceparent.contains("00f067aa0ba902b7"));
        assert_eq!(forwarded[2], (TRACESTATE_HEADER, "congo=t61".to_owned()));
    }
}
