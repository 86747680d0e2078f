//! External workers: a `dtp-bench-worker` process (dtp-client's runtime with up to 200 no-op
//! handlers at once) leases tasks of an external type from the engine over HTTP. A drain of
//! tasks posted while no worker runs, then tasks sent one at a time to the idle worker's
//! long-poll, each timed from its insert (`created_at`) to its handler's start in the worker.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::drain::{per_second, sample, scrape, FILL_BATCH_SIZE};
use crate::engine_db::EngineDatabase;
use crate::enqueue::fill_through_api;
use crate::pickup::{submit, wait_until_finished};
use crate::report::{Latencies, Measurement, Report, Target};
use crate::services::{Bench, EngineSettings};
use crate::Plan;

/// The external type `dtp-bench-worker` leases.
const BENCH_TYPE: &str = "bench-external";
/// Handlers the worker runs at once.
const WORKER_CONCURRENCY: usize = 200;
const POLL_EVERY: Duration = Duration::from_millis(10);
/// A drain slower than this many tasks per second is taken for a hang.
const SLOWEST_PLAUSIBLE_RATE: u64 = 20;
/// Issue targets: the drain through workers, and a long-poll answering a new task at rest.
const DRAIN_GOAL_TASKS_PER_S: f64 = 15_000.0;
const PICKUP_P50_GOAL_MS: f64 = 3.0;

/// The `external-workers` scenario, each part on a fresh database.
pub async fn run(bench: &Bench, plan: &Plan, report: &mut Report) -> anyhow::Result<()> {
    let types_file = bench.run_dir.join("external-types.toml");
    std::fs::write(
        &types_file,
        format!("[types.{BENCH_TYPE}]\nkind = \"external\"\n"),
    )
    .context("write the types file")?;
    let settings = EngineSettings {
        types_file: Some(types_file),
        worker_enabled: false,
        ..plan.tuned()
    };
    let config = format!("workers={WORKER_CONCURRENCY} http={}", plan.http_workers);

    let mut db = EngineDatabase::create(&bench.server, "external")?;
    let boundary = db.last_task_id()?;
    fill_through_api(
        bench,
        &mut db,
        &settings,
        BENCH_TYPE,
        usize::try_from(plan.drain_tasks)?,
        FILL_BATCH_SIZE,
    )
    .await?;
    db.checkpoint()?;
    let mut engine = [bench.engine("external-engine", &db, &settings)?];
    bench.start_all(&mut engine).await?;
    let mut worker = bench.worker("external-worker", &engine[0], WORKER_CONCURRENCY);
    let patience =
        Duration::from_secs(60 + u64::try_from(plan.drain_tasks).unwrap_or(0) / SLOWEST_PLAUSIBLE_RATE);
    let started = Instant::now();
    worker.spawn()?;
    while db.any_unfinished_after(boundary)? {
        if started.elapsed() > patience {
            bail!(
                "external drain not finished after {patience:?}; logs in {}",
                bench.run_dir.display()
            );
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
    let wall = started.elapsed();
    worker.terminate(Duration::from_secs(10));
    Bench::stop_all(&mut engine);
    let span_s = db.drain_seconds(boundary)?;
    let rate = per_second(plan.drain_tasks, span_s);
    report.record(Measurement::new("external-workers", &config, "tasks_per_s", rate).unit("tasks/s"));
    report.record(
        Measurement::new("external-workers", &config, "tasks_per_s_goal", rate)
            .unit("tasks/s")
            .goal(Target::AtLeast(DRAIN_GOAL_TASKS_PER_S)),
    );
    report.record(
        Measurement::new(
            "external-workers",
            &config,
            "wall_incl_startup",
            wall.as_secs_f64(),
        )
        .unit("s"),
    );
    report.record(
        Measurement::new(
            "external-workers",
            &config,
            "tasks_not_run_exactly_once",
            db.not_run_exactly_once(boundary)? as f64,
        )
        .unit("tasks")
        .check(Target::AtMost(0.0)),
    );

    let mut db = EngineDatabase::create(&bench.server, "external_pickup")?;
    db.checkpoint()?;
    let mut engine = [bench.engine("external-pickup-engine", &db, &settings)?];
    bench.start_all(&mut engine).await?;
    let mut worker = bench.worker("external-pickup-worker", &engine[0], WORKER_CONCURRENCY);
    worker.spawn()?;
    wait_until_long_polling(bench, &engine[0]).await?;
    let url = format!("{}/tasks", engine[0].base_url());
    let mut ids = Vec::with_capacity(plan.pickup_tasks);
    let mut errors = 0;
    for n in 0..plan.pickup_tasks {
        match submit(
            &bench.http,
            &url,
            json!({"type": BENCH_TYPE, "payload": {"n": n}}),
        )
        .await
        {
            Some(id) => ids.push(id),
            None => errors += 1,
        }
        tokio::time::sleep(Duration::from_millis(plan.pickup_gap_ms)).await;
    }
    wait_until_finished(&mut db, &ids).await?;
    worker.terminate(Duration::from_secs(10));
    Bench::stop_all(&mut engine);
    let starts = handler_starts(&worker.log_path())?;
    let to_handler = db
        .created_at(&ids)?
        .into_iter()
        .map(|(id, created)| {
            let at = starts
                .get(&id)
                .with_context(|| format!("no handler start logged for task {id}"))?;
            Ok((*at - created).as_seconds_f64() * 1_000.0)
        })
        .collect::<anyhow::Result<Vec<f64>>>()?;
    let latencies = Latencies::of_millis(to_handler);
    let paced = format!("{config} paced {}ms", plan.pickup_gap_ms);
    report.record(
        Measurement::new("external-workers", &paced, "pickup_p50", latencies.p50_ms)
            .unit("ms")
            .goal(Target::AtMost(PICKUP_P50_GOAL_MS)),
    );
    report.record(Measurement::new("external-workers", &paced, "pickup_p99", latencies.p99_ms).unit("ms"));
    report.record(
        Measurement::new("external-workers", &paced, "submit_errors", errors as f64)
            .unit("requests")
            .check(Target::AtMost(0.0)),
    );
    Ok(())
}

/// Waits until the worker's lease request waits in the engine (it is idle and long-polling).
async fn wait_until_long_polling(
    bench: &Bench,
    engine: &dtp_chaos::processes::ServiceProcess,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let metrics = scrape(bench, engine).await?;
        if sample(&metrics, "dtp_lease_polls_waiting").is_some_and(|n| n >= 1.0) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the worker never waited for a lease");
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// When each task's handler started, from the worker's JSON log ("handler started").
fn handler_starts(log: &std::path::Path) -> anyhow::Result<HashMap<i64, DateTime<Utc>>> {
    let text = std::fs::read_to_string(log).with_context(|| format!("read {}", log.display()))?;
    let mut starts = HashMap::new();
    for entry in text
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
    {
        if entry["message"] != "handler started" {
            continue;
        }
        let (Some(id), Some(at)) = (entry["task.id"].as_i64(), entry["timestamp"].as_str()) else {
            continue;
        };
        let at = DateTime::parse_from_rfc3339(at).with_context(|| format!("timestamp {at:?}"))?;
        starts.entry(id).or_insert(at.with_timezone(&Utc));
    }
    Ok(starts)
}
