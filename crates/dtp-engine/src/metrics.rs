//! The engine's Prometheus metrics. Counters are per process (sum them across engines);
//! the live-task gauges and the oldest due task's age are read from the database on each
//! scrape through partial indexes, so a scrape costs the same however long the history.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use service_http::metrics::latency_histograms;
use std::sync::atomic::AtomicU64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TypeStatusLabels {
    pub r#type: String,
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TypeOutcomeLabels {
    pub r#type: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TypeLabels {
    pub r#type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SlotLabels {
    pub state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: &'static str,
}

/// A gauge of things in progress: `track` counts one until the returned guard drops.
#[derive(Clone, Debug, Default)]
pub struct InProgress(Gauge);

impl InProgress {
    pub fn track(&self) -> InProgressGuard<'_> {
        self.0.inc();
        InProgressGuard(&self.0)
    }
}

pub struct InProgressGuard<'a>(&'a Gauge);

impl Drop for InProgressGuard<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

pub struct EngineMetrics {
    /// Live (PENDING, RUNNING) tasks by status and type, set at scrape time.
    pub live_tasks: Family<TypeStatusLabels, Gauge>,
    /// Age of the oldest due PENDING task, set at scrape time.
    pub oldest_due_pending_age: Gauge<f64, AtomicU64>,
    pub tasks_finished: Family<TypeStatusLabels, Counter>,
    pub pickup_latency: Histogram,
    pub attempt_duration: Family<TypeOutcomeLabels, Histogram>,
    pub retries_scheduled: Family<TypeLabels, Counter>,
    pub rescues: Counter,
    pub cancels: Counter,
    pub claims_per_poll: Histogram,
    pub worker_slots: Family<SlotLabels, Gauge>,
    pub leases_granted: Family<TypeLabels, Counter>,
    /// RUNNING tasks of external types (held leases), by type, set at scrape time.
    pub leases_active: Family<TypeLabels, Gauge>,
    pub leases_lost: Family<ReasonLabels, Counter>,
    pub lease_polls_waiting: InProgress,
}

impl EngineMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            live_tasks: Family::default(),
            oldest_due_pending_age: Gauge::default(),
            tasks_finished: Family::default(),
            pickup_latency: Histogram::new(service_http::metrics::latency_buckets()),
            attempt_duration: latency_histograms(),
            retries_scheduled: Family::default(),
            rescues: Counter::default(),
            cancels: Counter::default(),
            claims_per_poll: Histogram::new([0.0].into_iter().chain(exponential_buckets(1.0, 2.0, 10))),
            worker_slots: Family::default(),
            leases_granted: Family::default(),
            leases_active: Family::default(),
            leases_lost: Family::default(),
            lease_polls_waiting: InProgress::default(),
        };
        registry.register(
            "dtp_tasks",
            "Live tasks (PENDING, RUNNING) by status and type",
            metrics.live_tasks.clone(),
        );
        registry.register(
            "dtp_oldest_due_pending_age_seconds",
            "How long the oldest due PENDING task has been waiting",
            metrics.oldest_due_pending_age.clone(),
        );
        registry.register(
            "dtp_tasks_finished",
            "Tasks this process moved to a terminal status, by type and status",
            metrics.tasks_finished.clone(),
        );
        registry.register(
            "dtp_pickup_latency_seconds",
            "From a task being due (scheduledFor) to its attempt starting",
            metrics.pickup_latency.clone(),
        );
        registry.register(
            "dtp_attempt_duration_seconds",
            "Attempt run time by type and outcome",
            metrics.attempt_duration.clone(),
        );
        registry.register(
            "dtp_retries_scheduled",
            "Failed attempts followed by a scheduled retry, by type",
            metrics.retries_scheduled.clone(),
        );
        registry.register(
            "dtp_rescues",
            "Attempts of lost workers ended by the rescuer",
            metrics.rescues.clone(),
        );
        registry.register(
            "dtp_cancels",
            "Tasks canceled through this process",
            metrics.cancels.clone(),
        );
        registry.register(
            "dtp_claims_per_poll",
            "Tasks claimed by one claim statement",
            metrics.claims_per_poll.clone(),
        );
        registry.register(
            "dtp_worker_slots",
            "Worker slots of this process by state (busy, total)",
            metrics.worker_slots.clone(),
        );
        registry.register(
            "dtp_leases_granted",
            "Leases granted to workers outside the engine, by type",
            metrics.leases_granted.clone(),
        );
        registry.register(
            "dtp_leases_active",
            "Leases held by workers (RUNNING tasks of external types), by type",
            metrics.leases_active.clone(),
        );
        registry.register(
            "dtp_leases_lost",
            "Calls on leases that were no longer their task's current one, by reason",
            metrics.leases_lost.clone(),
        );
        registry.register(
            "dtp_lease_polls_waiting",
            "Workers' lease requests waiting for a task in this process",
            metrics.lease_polls_waiting.0.clone(),
        );
        metrics
    }

    /// Counts a task that reached a terminal status here.
    pub fn task_finished(&self, task_type: &str, status: &str) {
        self.tasks_finished
            .get_or_create(&TypeStatusLabels {
                r#type: task_type.to_owned(),
                status: status.to_owned(),
            })
            .inc();
    }
}
