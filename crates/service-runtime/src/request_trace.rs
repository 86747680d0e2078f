//! Request tracing middleware: every request gets an id (the caller's `X-Request-Id` when
//! it is sane, a fresh one otherwise), a span carrying it, one log line at the end, and the
//! id echoed on the response. Handlers read it through the `RequestId` extractor.

use std::future::{ready, Ready};
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use tracing::Instrument;

use crate::metrics::HttpMetrics;

pub const REQUEST_ID_HEADER: &str = "x-request-id";
const MAX_REQUEST_ID_CHARS: usize = 128;

/// The id of the request being served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

impl RequestId {
    fn from_header(value: Option<&HeaderValue>) -> Self {
        value
            .and_then(|v| v.to_str().ok())
            .filter(|v| is_sane(v))
            .map(|v| RequestId(v.to_owned()))
            .unwrap_or_else(|| RequestId(format!("{:032x}", rand::random::<u128>())))
    }
}

fn is_sane(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_REQUEST_ID_CHARS
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

impl FromRequest for RequestId {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let id = req
            .extensions()
            .get::<RequestId>()
            .cloned()
            .unwrap_or_else(|| RequestId::from_header(req.headers().get(REQUEST_ID_HEADER)));
        ready(Ok(id))
    }
}

/// The middleware; install with `App::wrap(actix_web::middleware::from_fn(trace_requests))`.
pub async fn trace_requests(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let request_id = RequestId::from_header(req.headers().get(REQUEST_ID_HEADER));
    let http_metrics = req.app_data::<web::Data<HttpMetrics>>().cloned();
    let method = req.method().to_string();
    req.extensions_mut().insert(request_id.clone());
    let route = req.match_pattern().unwrap_or_else(|| "unmatched".to_owned());
    let span = tracing::info_span!(
        "request",
        request_id = %request_id.0,
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
                metrics.observe(&route, &method, status, elapsed_ms / 1_000.0);
            }
            if let Ok(value) = HeaderValue::from_str(&request_id.0) {
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
        let keep = HeaderValue::from_static("abc-123_x.y:z");
        assert_eq!(RequestId::from_header(Some(&keep)).0, "abc-123_x.y:z");
        let bad = HeaderValue::from_static("has spaces");
        assert_eq!(RequestId::from_header(Some(&bad)).0.len(), 32);
        let long = HeaderValue::from_str(&"a".repeat(200)).unwrap();
        assert_eq!(RequestId::from_header(Some(&long)).0.len(), 32);
        assert_ne!(RequestId::from_header(None), RequestId::from_header(None));
    }
}
