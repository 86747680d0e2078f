//! The HTTP side both services share, by job: `access` (the gate in front of a route that
//! needs a caller), `http_errors` (JSON bodies for what actix answers itself, id parsing),
//! `request_trace` and `trace_context` (a span per request, W3C trace context), `metrics`
//! (per-route counters and latencies), `rate_limit` (quotas per caller), `body_budget` and
//! `connections` (memory and descriptor limits), `cross_origin`, `page_cursor` (listing
//! queries and their sealed cursors, keyed by `deployment_secrets`), `openapi` and `api_docs`
//! (the description and its page), `probes` (`/healthz`, `/readyz`), and `server`, which
//! puts them together in their one order. With the `testing` feature, `testing` checks a
//! served description against the served routes.

pub mod access;
pub mod api_docs;
pub mod body_budget;
pub mod connections;
pub mod cross_origin;
pub mod deployment_secrets;
pub mod http_errors;
pub mod metrics;
pub mod openapi;
pub mod page_cursor;
pub mod probes;
pub mod rate_limit;
pub mod request_trace;
pub mod server;
#[cfg(feature = "testing")]
pub mod testing;
pub mod trace_context;
