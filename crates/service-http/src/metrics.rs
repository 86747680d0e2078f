//! Prometheus metrics shared by both services: the registry, HTTP request counters and
//! latency histograms by route template, and the `/metrics` exposition (OpenMetrics text).

use std::sync::Mutex;

use actix_web::http::header::CONTENT_TYPE;
use actix_web::HttpResponse;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Latency buckets in seconds: 0.5 ms … ~16 s.
pub fn latency_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.000_5, 2.0, 16)
}

/// A histogram family with the latency buckets.
pub fn latency_histograms<L>() -> Family<L, Histogram>
where
    L: Clone + std::hash::Hash + Eq,
{
    Family::new_with_constructor(|| Histogram::new(latency_buckets()))
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: String,
    pub method: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
}

/// Counters and histograms of served HTTP requests.
#[derive(Clone)]
pub struct HttpMetrics {
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
}

impl HttpMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            requests: Family::default(),
            latency: latency_histograms(),
        };
        registry.register(
            "http_requests",
            "HTTP requests served, by route template, method and status",
            metrics.requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route template",
            metrics.latency.clone(),
        );
        metrics
    }

    pub fn observe(&self, route: &str, method: &str, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                route: route.to_owned(),
                method: method.to_owned(),
                status,
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels {
                route: route.to_owned(),
            })
            .observe(seconds);
    }
}

/// A service's metrics registry, encoded on each scrape.
pub struct MetricsRegistry {
    registry: Mutex<Registry>,
}

impl MetricsRegistry {
    pub fn new(registry: Registry) -> Self {
        Self {
            registry: Mutex::new(registry),
        }
    }

    /// The scrape answer: every registered metric in OpenMetrics text format.
    pub fn exposition(&self) -> HttpResponse {
        let mut body = String::new();
        let registry = self
            .registry
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Err(e) = prometheus_client::encoding::text::encode(&mut body, &registry) {
            tracing::error!(error = %e, "could not encode metrics");
            return HttpResponse::InternalServerError().finish();
        }
        HttpResponse::Ok()
            .insert_header((
                CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            ))
            .body(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposes_request_metrics() {
        let mut registry = Registry::default();
        let http = HttpMetrics::register(&mut registry);
        http.observe("/tasks/{id}", "GET", 200, 0.002);
        let metrics = MetricsRegistry::new(registry);
        let response = metrics.exposition();
        assert_eq!(response.status(), 200);
        let mut body = String::new();
        prometheus_client::encoding::text::encode(&mut body, &metrics.registry.lock().unwrap()).unwrap();
        assert!(
            body.contains(r#"http_requests_total{route="/tasks/{id}",method="GET",status="200"} 1"#),
            "{body}"
        );
        assert!(body.contains("http_request_duration_seconds_bucket"));
    }
}
