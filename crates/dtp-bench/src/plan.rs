//! The sizes and settings of a run: fixed defaults for a full run, smaller ones for
//! `--smoke`, each overridable by its own flag.

use clap::Args;

use crate::services::EngineSettings;

/// Flags that override one size or setting each; unset ones take the full or smoke default.
#[derive(Args, Debug, Default)]
pub struct PlanArgs {
    /// Tasks each drain pre-inserts [20000; smoke 500].
    #[arg(long)]
    drain_tasks: Option<i64>,
    /// Worker slots of the tuned engine (drain, pickup, history, two engines, control plane) [2000].
    #[arg(long)]
    concurrency: Option<usize>,
    /// Database connections of the tuned engine [16].
    #[arg(long)]
    pool_size: Option<usize>,
    /// HTTP workers of the tuned engine and of TaskPilot [1: two cores shared with Postgres].
    #[arg(long)]
    http_workers: Option<usize>,
    /// Worker slots of the engine delivering to an HTTP target (each slot holds one
    /// connection to the receiver) [256].
    #[arg(long)]
    http_target_concurrency: Option<usize>,
    /// Worker slots of the second drain, at the engine's default pool [10].
    #[arg(long)]
    baseline_concurrency: Option<usize>,
    /// Tasks one client enqueues through `POST /tasks/batch` [100000; smoke 3000].
    #[arg(long)]
    enqueue_tasks: Option<usize>,
    /// Tasks per batch [1000].
    #[arg(long)]
    batch_size: Option<usize>,
    /// Tasks sent one at a time to an idle engine [200; smoke 20].
    #[arg(long)]
    pickup_tasks: Option<usize>,
    /// Pause between two of those tasks, ms [10].
    #[arg(long)]
    pickup_gap_ms: Option<u64>,
    /// Offered load through `POST /tasks`, tasks per second [2000; smoke 200].
    #[arg(long)]
    load_rate: Option<u64>,
    /// How long the load is offered, seconds [10; smoke 1].
    #[arg(long)]
    load_s: Option<u64>,
    /// Concurrent control-plane clients [32; smoke 4].
    #[arg(long)]
    clients: Option<usize>,
    /// How long the control-plane clients run, seconds [10; smoke 2].
    #[arg(long)]
    control_plane_s: Option<u64>,
    /// Finished tasks in the history [1000000; smoke 5000].
    #[arg(long)]
    history_finished: Option<i64>,
    /// Future PENDING tasks in the history [100000; smoke 500].
    #[arg(long)]
    history_future: Option<i64>,
    /// Web tasks created with a 1 MiB payload and bound [300; smoke 8].
    #[arg(long)]
    large_bodies: Option<usize>,
    /// Of those, how many are in flight at once [128; smoke 4].
    #[arg(long)]
    large_body_clients: Option<usize>,
    /// How long the services may take to give memory back afterwards, seconds [60; smoke 1].
    #[arg(long)]
    large_body_settle_s: Option<u64>,
    /// Drains with the feed on and off, each [3; smoke 1].
    #[arg(long)]
    feed_rounds: Option<usize>,
    /// Tasks in each of those drains: a drain of 20,000 lasts under a second here, and its
    /// spread is as wide as the feed's cost [100000; smoke 500].
    #[arg(long)]
    feed_tasks: Option<i64>,
    /// Finished tasks the cleaner deletes while pickup is measured [1000000; smoke 5000].
    #[arg(long)]
    retention_rows: Option<i64>,
    /// Web tasks created and bound per second through TaskPilot [2000; smoke 50].
    #[arg(long)]
    mirror_rate: Option<u64>,
    /// For how long, seconds [10; smoke 1].
    #[arg(long)]
    mirror_s: Option<u64>,
    /// Create-and-bind pairs in flight at most [64; smoke 4].
    #[arg(long)]
    mirror_clients: Option<usize>,
    /// Jobs each side enqueues and drains in `peers` [50000; smoke 500].
    #[arg(long)]
    peer_jobs: Option<usize>,
    /// Rounds of `peers`, for the spread [3; smoke 1].
    #[arg(long)]
    peer_rounds: Option<usize>,
}

/// Resolved sizes and settings.
#[derive(Debug, Clone)]
pub struct Plan {
    pub drain_tasks: i64,
    pub concurrency: usize,
    pub pool_size: usize,
    pub http_workers: usize,
    pub http_target_concurrency: usize,
    pub baseline_concurrency: usize,
    pub enqueue_tasks: usize,
    pub batch_size: usize,
    pub pickup_tasks: usize,
    pub pickup_gap_ms: u64,
    pub load_rate: u64,
    pub load_s: u64,
    pub clients: usize,
    pub control_plane_s: u64,
    pub history_finished: i64,
    pub history_future: i64,
    pub large_bodies: usize,
    pub large_body_clients: usize,
    pub large_body_settle_s: u64,
    pub feed_rounds: usize,
    pub feed_tasks: i64,
    pub retention_rows: i64,
    pub mirror_rate: u64,
    pub mirror_s: u64,
    pub mirror_clients: usize,
    pub peer_jobs: usize,
    pub peer_rounds: usize,
}

impl Plan {
    /// The full run's sizes.
    pub fn full() -> Self {
        Self {
            drain_tasks: 20_000,
            concurrency: 2_000,
            pool_size: 16,
            http_workers: 1,
            http_target_concurrency: 256,
            baseline_concurrency: 10,
            enqueue_tasks: 100_000,
            batch_size: 1_000,
            pickup_tasks: 200,
            pickup_gap_ms: 10,
            load_rate: 2_000,
            load_s: 10,
            clients: 32,
            control_plane_s: 10,
            history_finished: 1_000_000,
            history_future: 100_000,
            large_bodies: 300,
            large_body_clients: 128,
            large_body_settle_s: 60,
            feed_rounds: 3,
            feed_tasks: 100_000,
            retention_rows: 1_000_000,
            mirror_rate: 2_000,
            mirror_s: 10,
            mirror_clients: 64,
            peer_jobs: 50_000,
            peer_rounds: 3,
        }
    }

    /// A run small enough for CI, on debug builds too; settings stay those of the full run.
    pub fn smoke() -> Self {
        Self {
            drain_tasks: 500,
            enqueue_tasks: 3_000,
            pickup_tasks: 20,
            load_rate: 200,
            load_s: 1,
            clients: 4,
            control_plane_s: 2,
            history_finished: 5_000,
            history_future: 500,
            large_bodies: 8,
            large_body_clients: 4,
            large_body_settle_s: 1,
            feed_rounds: 1,
            feed_tasks: 500,
            retention_rows: 5_000,
            mirror_rate: 50,
            mirror_s: 1,
            mirror_clients: 4,
            peer_jobs: 500,
            peer_rounds: 1,
            ..Self::full()
        }
    }

    pub fn resolve(args: &PlanArgs, smoke: bool) -> Self {
        let base = if smoke { Self::smoke() } else { Self::full() };
        Self {
            drain_tasks: args.drain_tasks.unwrap_or(base.drain_tasks),
            concurrency: args.concurrency.unwrap_or(base.concurrency),
            pool_size: args.pool_size.unwrap_or(base.pool_size),
            http_workers: args.http_workers.unwrap_or(base.http_workers),
            http_target_concurrency: args
                .http_target_concurrency
                .unwrap_or(base.http_target_concurrency),
            baseline_concurrency: args.baseline_concurrency.unwrap_or(base.baseline_concurrency),
            enqueue_tasks: args.enqueue_tasks.unwrap_or(base.enqueue_tasks),
            batch_size: args.batch_size.unwrap_or(base.batch_size),
            pickup_tasks: args.pickup_tasks.unwrap_or(base.pickup_tasks),
            pickup_gap_ms: args.pickup_gap_ms.unwrap_or(base.pickup_gap_ms),
            load_rate: args.load_rate.unwrap_or(base.load_rate),
            load_s: args.load_s.unwrap_or(base.load_s),
            clients: args.clients.unwrap_or(base.clients),
            control_plane_s: args.control_plane_s.unwrap_or(base.control_plane_s),
            history_finished: args.history_finished.unwrap_or(base.history_finished),
            history_future: args.history_future.unwrap_or(base.history_future),
            large_bodies: args.large_bodies.unwrap_or(base.large_bodies),
            large_body_clients: args.large_body_clients.unwrap_or(base.large_body_clients),
            large_body_settle_s: args.large_body_settle_s.unwrap_or(base.large_body_settle_s),
            feed_rounds: args.feed_rounds.unwrap_or(base.feed_rounds),
            feed_tasks: args.feed_tasks.unwrap_or(base.feed_tasks),
            retention_rows: args.retention_rows.unwrap_or(base.retention_rows),
            mirror_rate: args.mirror_rate.unwrap_or(base.mirror_rate),
            mirror_s: args.mirror_s.unwrap_or(base.mirror_s),
            mirror_clients: args.mirror_clients.unwrap_or(base.mirror_clients),
            peer_jobs: args.peer_jobs.unwrap_or(base.peer_jobs),
            peer_rounds: args.peer_rounds.unwrap_or(base.peer_rounds),
        }
    }

    /// The engine as tuned for throughput.
    pub fn tuned(&self) -> EngineSettings {
        EngineSettings::worker(self.concurrency, Some(self.pool_size), Some(self.http_workers))
    }

    /// The engine with the default concurrency, pool and HTTP workers.
    pub fn baseline(&self) -> EngineSettings {
        EngineSettings::worker(self.baseline_concurrency, None, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_smoke_or_full_defaults() {
        let args = PlanArgs {
            concurrency: Some(64),
            ..PlanArgs::default()
        };
        let smoke = Plan::resolve(&args, true);
        assert_eq!((smoke.concurrency, smoke.drain_tasks), (64, 500));
        let full = Plan::resolve(&PlanArgs::default(), false);
        assert_eq!(
            (full.concurrency, full.drain_tasks, full.batch_size),
            (2_000, 20_000, 1_000)
        );
    }
}
