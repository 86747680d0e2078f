//! TaskPilot's own Prometheus metrics: every call to the scheduler, by operation and
//! outcome, with its latency. HTTP request metrics come from `service_http::metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use service_http::metrics::latency_histograms;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    pub operation: &'static str,
    pub outcome: &'static str,
    /// The scheduler's HTTP status (`2xx` for every success), or `none` without an answer.
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    pub operation: &'static str,
}

#[derive(Clone)]
pub struct SchedulerMetrics {
    calls: Family<CallLabels, Counter>,
    latency: Family<OperationLabels, Histogram>,
}

impl SchedulerMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            calls: Family::default(),
            latency: latency_histograms(),
        };
        registry.register(
            "taskpilot_scheduler_calls",
            "Calls to the scheduler by operation (create, get, get_attempts, cancel), outcome \
             (ok, not_found, rejected, failed, unreachable) and the scheduler's status",
            metrics.calls.clone(),
        );
        registry.register(
            "taskpilot_scheduler_call_duration_seconds",
            "Scheduler call latency by operation",
            metrics.latency.clone(),
        );
        metrics
    }

    pub fn observe(&self, calls: CallLabels, seconds: f64) {
        let operation = calls.operation;
        self.calls.get_or_create(&calls).inc();
        self.latency
            .get_or_create(&OperationLabels { operation })
            .observe(seconds);
    }
}
