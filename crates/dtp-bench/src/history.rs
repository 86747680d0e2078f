//! History: the same drain and pickup on a database that already holds a long history
//! (finished tasks with their attempts, and tasks due only far in the future), beside the
//! figures on an empty database. The claim path reads partial indexes, so they should match.

use std::time::Instant;

use crate::drain::{self, record_drain};
use crate::engine_db::EngineDatabase;
use crate::pickup::{self, load_config, paced_config, record_pickup};
use crate::report::{Measurement, Report, Target};
use crate::services::Bench;
use crate::Plan;

/// How far the figures on a full table may drift from those on an empty one.
const TOLERANCE_PERCENT: f64 = 20.0;

pub async fn run(bench: &Bench, plan: &Plan, report: &mut Report) -> anyhow::Result<()> {
    let settings = plan.tuned();
    let empty = settings.label();
    // The empty-table figures of this run, or taken now when those scenarios did not run.
    if report.value_of("drain", &empty, "tasks_per_s").is_none() {
        let mut db = EngineDatabase::create(&bench.server, "hist_empty")?;
        let result = drain::drain(bench, &mut db, &settings, 1, plan.drain_tasks).await?;
        record_drain(report, "drain", &empty, &result);
    }
    if report
        .value_of("pickup", &paced_config(&empty, plan), "pickup_p99")
        .is_none()
    {
        let mut db = EngineDatabase::create(&bench.server, "hist_empty")?;
        let result = pickup::measure(bench, &mut db, &settings, plan).await?;
        record_pickup(report, "pickup", &empty, plan, &result);
    }

    let mut db = EngineDatabase::create(&bench.server, "history")?;
    let full = format!(
        "{empty} +{} done +{} future",
        plan.history_finished, plan.history_future
    );
    let seeding = Instant::now();
    db.seed_history(plan.history_finished, plan.history_future)?;
    report.record(
        Measurement::new(
            "history",
            &full,
            "seed_and_vacuum",
            seeding.elapsed().as_secs_f64(),
        )
        .unit("s"),
    );

    let drained = drain::drain(bench, &mut db, &settings, 1, plan.drain_tasks).await?;
    record_drain(report, "history", &full, &drained);
    let rate_floor = Target::AtLeast(100.0 - TOLERANCE_PERCENT);
    let latency_ceiling = Target::AtMost(100.0 + TOLERANCE_PERCENT);
    let baseline = ("drain", empty.as_str(), "tasks_per_s");
    compare(
        report,
        &full,
        "drain_rate_vs_empty",
        drained.tasks_per_s,
        baseline,
        rate_floor,
    );

    let picked = pickup::measure(bench, &mut db, &settings, plan).await?;
    record_pickup(report, "history", &full, plan, &picked);
    compare(
        report,
        &full,
        "paced_pickup_p99_vs_empty",
        picked.paced.p99_ms,
        ("pickup", &paced_config(&empty, plan), "pickup_p99"),
        latency_ceiling,
    );
    compare(
        report,
        &full,
        "load_pickup_p99_vs_empty",
        picked.load.p99_ms,
        ("pickup", &load_config(&empty, plan), "pickup_p99"),
        latency_ceiling,
    );
    Ok(())
}

/// Records `value` as a percentage of the empty-table figure named by `baseline`
/// (scenario, config, metric), with the bound that percentage should respect.
fn compare(
    report: &mut Report,
    config: &str,
    metric: &'static str,
    value: f64,
    baseline: (&str, &str, &str),
    target: Target,
) {
    let (scenario, baseline_config, baseline_metric) = baseline;
    let Some(empty) = report.value_of(scenario, baseline_config, baseline_metric) else {
        return;
    };
    let percent = if empty > 0.0 { value / empty * 100.0 } else { 0.0 };
    report.record(
        Measurement::new("history", config, metric, percent)
            .unit("%")
            .goal(target),
    );
}
