//! Peers: DTP beside graphile-worker on the same Postgres, back to back in one run, each
//! measured the same way. Bulk enqueue with the workers off (DTP through `POST /tasks/batch`,
//! graphile-worker through `addJobs`, 1,000 per call); drains timed from the workers' spawn
//! to the bench seeing no job left, both tuned and both at concurrency 10; idle pickup from
//! the client's send to the handler's start. Each round prints its pairs and their ratios;
//! the rounds' spread comes last.

use crate::drain::{drain, mib, per_second};
use crate::engine_db::EngineDatabase;
use crate::enqueue::fill_through_api;
use crate::graphile::{Graphile, PeerDatabase, WorkerSettings};
use crate::pickup::idle_from_send;
use crate::report::{Latencies, Measurement, Report, Target};
use crate::services::{Bench, EngineSettings};
use crate::Plan;

/// Issue targets, as ratios DTP / graphile-worker in the same run, and pickup ceilings.
const TUNED_DRAIN_RATIO_GOAL: f64 = 1.25;
const C10_DRAIN_RATIO_GOAL: f64 = 1.0;
const ENQUEUE_RATIO_GOAL: f64 = 1.2;
const PICKUP_P50_GOAL_MS: f64 = 1.0;
const PICKUP_P99_GOAL_MS: f64 = 3.0;
/// The untuned concurrency both sides are compared at.
const PLAIN_CONCURRENCY: usize = 10;

/// One figure taken from both sides in every round.
struct Pair {
    config: String,
    /// DTP / graphile-worker; `AtLeast` for rates.
    ratio_goal: Option<f64>,
    dtp: Vec<f64>,
    peer: Vec<f64>,
}

impl Pair {
    fn new(config: impl Into<String>, ratio_goal: Option<f64>) -> Self {
        Self {
            config: config.into(),
            ratio_goal,
            dtp: Vec::new(),
            peer: Vec::new(),
        }
    }

    /// Records one round's figures and their ratio.
    fn add(&mut self, report: &mut Report, round: usize, unit: &'static str, dtp: f64, peer: f64) {
        self.dtp.push(dtp);
        self.peer.push(peer);
        let config = format!("{} r{round}", self.config);
        report.record(Measurement::new("peers", &config, "dtp", dtp).unit(unit));
        report.record(Measurement::new("peers", &config, "graphile_worker", peer).unit(unit));
        report.record(Measurement::new("peers", &config, "ratio", ratio(dtp, peer)).unit("x"));
    }

    /// The spread over the rounds, one line per side; the median ratio carries the goal.
    fn summarize(&self, report: &mut Report, unit: &'static str) {
        let ratios: Vec<f64> = self
            .dtp
            .iter()
            .zip(&self.peer)
            .map(|(d, p)| ratio(*d, *p))
            .collect();
        for (side, values, unit) in [
            ("dtp", &self.dtp, unit),
            ("graphile-worker", &self.peer, unit),
            ("ratio", &ratios, "x"),
        ] {
            let config = format!("{} x{} {side}", self.config, values.len());
            let spread = Spread::of(values);
            report.record(Measurement::new("peers", &config, "min", spread.min).unit(unit));
            let median = Measurement::new("peers", &config, "median", spread.median).unit(unit);
            report.record(match (side, self.ratio_goal) {
                ("ratio", Some(goal)) => median.goal(Target::AtLeast(goal)),
                _ => median,
            });
            report.record(Measurement::new("peers", &config, "max", spread.max).unit(unit));
        }
    }
}

fn ratio(dtp: f64, peer: f64) -> f64 {
    if peer > 0.0 {
        dtp / peer
    } else {
        0.0
    }
}

/// Lowest, median and highest of a few samples.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Spread {
    min: f64,
    median: f64,
    max: f64,
}

impl Spread {
    fn of(values: &[f64]) -> Self {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = match n {
            0 => 0.0,
            _ if n % 2 == 1 => sorted[n / 2],
            _ => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
        };
        Self {
            min: sorted.first().copied().unwrap_or(0.0),
            median,
            max: sorted.last().copied().unwrap_or(0.0),
        }
    }
}

/// The `peers` scenario: `plan.peer_rounds` rounds of the four pairs.
pub async fn run(bench: &Bench, plan: &Plan, report: &mut Report) -> anyhow::Result<()> {
    let graphile = Graphile::locate()?;
    let jobs = plan.peer_jobs;
    let tuned = plan.tuned();
    let plain = EngineSettings::worker(PLAIN_CONCURRENCY, None, None);
    let mut enqueue = Pair::new(
        format!("enqueue {jobs} batch={}", plan.batch_size),
        Some(ENQUEUE_RATIO_GOAL),
    );
    // The tuned settings of both sides are in bench/RESULTS.md: the label stays short.
    let mut drain_tuned = Pair::new(format!("drain {jobs} tuned"), Some(TUNED_DRAIN_RATIO_GOAL));
    let mut drain_plain = Pair::new(
        format!("drain {jobs} c={PLAIN_CONCURRENCY}"),
        Some(C10_DRAIN_RATIO_GOAL),
    );
    let pickup_config = format!("pickup c={PLAIN_CONCURRENCY} paced {}ms", plan.pickup_gap_ms);
    let mut pickup_p50 = Pair::new(format!("{pickup_config} p50"), None);
    let mut pickup_p99 = Pair::new(format!("{pickup_config} p99"), None);

    for round in 1..=plan.peer_rounds {
        eprintln!("dtp-bench: peers round {round} of {}", plan.peer_rounds);
        let (dtp, peer) = enqueue_pair(bench, &graphile, plan).await?;
        enqueue.add(report, round, "tasks/s", dtp, peer);

        for (pair, dtp_settings, peer_settings) in [
            (&mut drain_tuned, &tuned, WorkerSettings::Tuned),
            (
                &mut drain_plain,
                &plain,
                WorkerSettings::Concurrency(PLAIN_CONCURRENCY),
            ),
        ] {
            let mut db = EngineDatabase::create(&bench.server, "peers")?;
            let ours = drain(bench, &mut db, dtp_settings, 1, i64::try_from(jobs)?).await?;
            drop(db);
            let mut peer_db = PeerDatabase::create(&bench.server, "peers_gw")?;
            graphile.migrate(&peer_db).await?;
            graphile.enqueue(&peer_db, jobs, plan.batch_size).await?;
            peer_db.checkpoint()?;
            let theirs = graphile.drain(bench, &mut peer_db, peer_settings, jobs).await?;
            pair.add(report, round, "tasks/s", ours.wall_tasks_per_s, theirs.jobs_per_s);
            let config = format!("{} r{round}", pair.config);
            report.record(
                Measurement::new("peers", &config, "dtp_engine_side", ours.tasks_per_s).unit("tasks/s"),
            );
            report.record(
                Measurement::new("peers", &config, "dtp_peak_rss", mib(ours.peak_rss_kib)).unit("MiB"),
            );
            report.record(
                Measurement::new(
                    "peers",
                    &config,
                    "graphile_worker_peak_rss",
                    mib(theirs.peak_rss_kib),
                )
                .unit("MiB"),
            );
            report.record(
                Measurement::new(
                    "peers",
                    &config,
                    "dtp_tasks_not_run_exactly_once",
                    ours.not_run_exactly_once as f64,
                )
                .unit("tasks")
                .check(Target::AtMost(0.0)),
            );
        }

        let ours = idle_from_send(bench, &plain, plan).await?;
        let peer_db = PeerDatabase::create(&bench.server, "peers_gw")?;
        graphile.migrate(&peer_db).await?;
        let theirs = Latencies::of_millis(
            graphile
                .pickup(&peer_db, plan.pickup_tasks, plan.pickup_gap_ms, PLAIN_CONCURRENCY)
                .await?,
        );
        pickup_p50.add(report, round, "ms", ours.p50_ms, theirs.p50_ms);
        pickup_p99.add(report, round, "ms", ours.p99_ms, theirs.p99_ms);
    }

    enqueue.summarize(report, "tasks/s");
    drain_tuned.summarize(report, "tasks/s");
    drain_plain.summarize(report, "tasks/s");
    pickup_p50.summarize(report, "ms");
    pickup_p99.summarize(report, "ms");
    for (pair, ceiling) in [
        (&pickup_p50, PICKUP_P50_GOAL_MS),
        (&pickup_p99, PICKUP_P99_GOAL_MS),
    ] {
        let config = format!("{} x{} dtp", pair.config, pair.dtp.len());
        report.record(
            Measurement::new("peers", &config, "median_goal", Spread::of(&pair.dtp).median)
                .unit("ms")
                .goal(Target::AtMost(ceiling)),
        );
    }
    Ok(())
}

/// One bulk enqueue on each side, workers off: DTP's rate, graphile-worker's rate.
async fn enqueue_pair(bench: &Bench, graphile: &Graphile, plan: &Plan) -> anyhow::Result<(f64, f64)> {
    let mut db = EngineDatabase::create(&bench.server, "peers")?;
    let posted = fill_through_api(
        bench,
        &mut db,
        &EngineSettings::api_only(),
        "demo",
        plan.peer_jobs,
        plan.batch_size,
    )
    .await?;
    let ours = per_second(i64::try_from(plan.peer_jobs)?, posted.elapsed.as_secs_f64());
    drop(db);

    let mut peer_db = PeerDatabase::create(&bench.server, "peers_gw")?;
    graphile.migrate(&peer_db).await?;
    peer_db.checkpoint()?;
    let theirs = graphile
        .enqueue(&peer_db, plan.peer_jobs, plan.batch_size)
        .await?;
    Ok((ours, theirs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spread_is_the_lowest_the_median_and_the_highest() {
        assert_eq!(
            Spread::of(&[3.0, 1.0, 2.0]),
            Spread {
                min: 1.0,
                median: 2.0,
                max: 3.0
            }
        );
        assert_eq!(Spread::of(&[4.0, 1.0]).median, 2.5);
        assert_eq!(Spread::of(&[]).max, 0.0);
    }

    #[test]
    fn a_ratio_against_nothing_is_zero_not_infinite() {
        assert_eq!(ratio(10.0, 0.0), 0.0);
        assert_eq!(ratio(10.0, 4.0), 2.5);
    }
}
