//! Drain: no-op tasks posted through `POST /tasks/batch` while no worker runs, then engines
//! started with chosen settings. Two rates: from the engines' spawn to the bench seeing no
//! unfinished task (start-up included, as a user sees it), and from the first claim to the
//! last completion as recorded in `task_attempts`. Every task must have run exactly once.

use std::time::{Duration, Instant};

use anyhow::bail;
use dtp_chaos::processes::ServiceProcess;

use crate::engine_db::EngineDatabase;
use crate::enqueue::fill_through_api;
use crate::report::{Measurement, Report, Target};
use crate::services::{Bench, EngineSettings};
use crate::Plan;

/// How often the bench looks whether the queue is empty.
const POLL_EVERY: Duration = Duration::from_millis(10);
/// How long an engine runs on an empty queue before its idle memory is read.
const IDLE_SETTLE: Duration = Duration::from_secs(1);
/// A drain slower than this many tasks per second is taken for a hang.
const SLOWEST_PLAUSIBLE_RATE: u64 = 20;
/// Tasks per `POST /tasks/batch` while a drain's queue is filled.
pub const FILL_BATCH_SIZE: usize = 1_000;

/// What one drain showed.
#[derive(Debug, Clone)]
pub struct DrainResult {
    pub tasks: i64,
    /// From the first claim to the last completion.
    pub span_s: f64,
    pub tasks_per_s: f64,
    /// Tasks over `wall`.
    pub wall_tasks_per_s: f64,
    /// Tasks that did not run exactly once to success (must be 0).
    pub not_run_exactly_once: i64,
    /// Highest resident memory of any engine during the drain (VmHWM), KiB.
    pub peak_rss_kib: u64,
    /// Attempts per engine process, most first.
    pub by_worker: Vec<(String, i64)>,
    /// Claim statements the engines ran, and tasks per claim on average (their metrics).
    pub claims: f64,
    pub tasks_per_claim: f64,
    /// From spawning the engines to the bench seeing the queue empty (includes start-up).
    pub wall: Duration,
}

/// Posts `tasks` due no-op `demo` tasks into `db`, starts `engines` engine processes at
/// once with `settings`, and waits until every one of those tasks is finished.
pub async fn drain(
    bench: &Bench,
    db: &mut EngineDatabase,
    settings: &EngineSettings,
    engines: usize,
    tasks: i64,
) -> anyhow::Result<DrainResult> {
    drain_engines(bench, db, settings, engines, "demo", tasks).await
}

/// As `drain` with one engine, for tasks of `task_type` (which `settings` must register).
pub async fn drain_of_type(
    bench: &Bench,
    db: &mut EngineDatabase,
    settings: &EngineSettings,
    task_type: &str,
    tasks: i64,
) -> anyhow::Result<DrainResult> {
    drain_engines(bench, db, settings, 1, task_type, tasks).await
}

async fn drain_engines(
    bench: &Bench,
    db: &mut EngineDatabase,
    settings: &EngineSettings,
    engines: usize,
    task_type: &str,
    tasks: i64,
) -> anyhow::Result<DrainResult> {
    let boundary = db.last_task_id()?;
    fill_through_api(
        bench,
        db,
        settings,
        task_type,
        usize::try_from(tasks)?,
        FILL_BATCH_SIZE,
    )
    .await?;
    db.checkpoint()?;
    let mut processes = (0..engines)
        .map(|n| bench.engine(&format!("drain-engine{n}"), db, settings))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let patience = Duration::from_secs(60 + u64::try_from(tasks).unwrap_or(0) / SLOWEST_PLAUSIBLE_RATE);
    let started = Instant::now();
    bench.start_all(&mut processes).await?;
    while db.any_unfinished_after(boundary)? {
        if let Some((name, status)) = processes
            .iter_mut()
            .find_map(|p| p.exit_status().map(|s| (p.name.clone(), s)))
        {
            bail!(
                "{name} exited during the drain ({status}); logs in {}",
                bench.run_dir.display()
            );
        }
        if started.elapsed() > patience {
            bail!(
                "drain of {tasks} tasks not finished after {patience:?}; logs in {}",
                bench.run_dir.display()
            );
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
    let wall = started.elapsed();
    let peak_rss_kib = processes
        .iter()
        .filter_map(|p| p.peak_rss_kib())
        .max()
        .unwrap_or(0);
    let (mut claimed, mut claims) = (0.0, 0.0);
    for process in &processes {
        let metrics = scrape(bench, process).await?;
        claimed += sample(&metrics, "dtp_claims_per_poll_sum").unwrap_or(0.0);
        claims += sample(&metrics, "dtp_claims_per_poll_count").unwrap_or(0.0);
    }
    Bench::stop_all(&mut processes);
    let span_s = db.drain_seconds(boundary)?;
    Ok(DrainResult {
        tasks,
        span_s,
        tasks_per_s: per_second(tasks, span_s),
        wall_tasks_per_s: per_second(tasks, wall.as_secs_f64()),
        not_run_exactly_once: db.not_run_exactly_once(boundary)?,
        peak_rss_kib,
        by_worker: db.attempts_by_worker(boundary)?,
        claims,
        tasks_per_claim: if claims > 0.0 { claimed / claims } else { 0.0 },
        wall,
    })
}

/// An engine's `/metrics` text.
pub async fn scrape(bench: &Bench, engine: &ServiceProcess) -> anyhow::Result<String> {
    let url = format!("{}/metrics", engine.base_url());
    Ok(bench
        .http
        .get(url)
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?)
}

/// The value of the metric line whose series (name and labels) is `series`.
pub fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let (name, value) = line.split_once(' ')?;
        (name == series).then(|| value.trim().parse().ok()).flatten()
    })
}

/// Resident memory of an engine with `settings` idling on an empty queue, KiB.
pub async fn idle_rss_kib(
    bench: &Bench,
    db: &EngineDatabase,
    settings: &EngineSettings,
) -> anyhow::Result<u64> {
    let mut engine = [bench.engine("idle-engine", db, settings)?];
    bench.start_all(&mut engine).await?;
    tokio::time::sleep(IDLE_SETTLE).await;
    let rss = engine[0].rss_kib().unwrap_or(0);
    Bench::stop_all(&mut engine);
    Ok(rss)
}

/// Issue targets: the tuned drain rate, and the engine's memory at idle and while draining.
const DRAIN_GOAL_TASKS_PER_S: f64 = 40_000.0;
const IDLE_RSS_GOAL_MIB: f64 = 50.0;
const PEAK_RSS_GOAL_MIB: f64 = 200.0;

/// The `drain` scenario: the tuned engine (with its idle and peak memory), then the default
/// concurrency, each on a fresh database.
pub async fn run(bench: &Bench, plan: &Plan, report: &mut Report) -> anyhow::Result<()> {
    for (settings, with_idle_memory) in [(plan.tuned(), true), (plan.baseline(), false)] {
        let mut db = EngineDatabase::create(&bench.server, "drain")?;
        let config = settings.label();
        if with_idle_memory {
            let idle = idle_rss_kib(bench, &db, &settings).await?;
            report.record(
                Measurement::new("drain", &config, "idle_rss", mib(idle))
                    .unit("MiB")
                    .goal(Target::AtMost(IDLE_RSS_GOAL_MIB)),
            );
        }
        let result = drain(bench, &mut db, &settings, 1, plan.drain_tasks).await?;
        record_drain(report, "drain", &config, &result);
        if with_idle_memory {
            // The throughput goal is the tuned engine's; c=10 is reported to compare with peers.
            report.record(
                Measurement::new("drain", &config, "tasks_per_s_goal", result.tasks_per_s)
                    .unit("tasks/s")
                    .goal(Target::AtLeast(DRAIN_GOAL_TASKS_PER_S)),
            );
        }
        report.record(
            Measurement::new("drain", &config, "peak_rss", mib(result.peak_rss_kib))
                .unit("MiB")
                .goal(Target::AtMost(PEAK_RSS_GOAL_MIB)),
        );
    }
    Ok(())
}

/// The `two-engines` scenario: two engine processes drain one database.
pub async fn run_two_engines(bench: &Bench, plan: &Plan, report: &mut Report) -> anyhow::Result<()> {
    let settings = plan.tuned();
    let mut db = EngineDatabase::create(&bench.server, "two")?;
    let result = drain(bench, &mut db, &settings, 2, plan.drain_tasks).await?;
    let config = format!("2x {}", settings.label());
    record_drain(report, "two-engines", &config, &result);
    let busiest = result.by_worker.first().map_or(0, |(_, n)| *n);
    report.record(
        Measurement::new(
            "two-engines",
            &config,
            "engines_that_ran_tasks",
            result.by_worker.len() as f64,
        )
        .unit("engines"),
    );
    report.record(
        Measurement::new(
            "two-engines",
            &config,
            "busiest_engine_share",
            busiest as f64 / result.tasks.max(1) as f64 * 100.0,
        )
        .unit("%"),
    );
    Ok(())
}

/// The figures every drain reports.
pub fn record_drain(report: &mut Report, scenario: &'static str, config: &str, result: &DrainResult) {
    report.record(Measurement::new(scenario, config, "tasks_per_s", result.tasks_per_s).unit("tasks/s"));
    report.record(
        Measurement::new(
            scenario,
            config,
            "tasks_per_s_from_spawn",
            result.wall_tasks_per_s,
        )
        .unit("tasks/s"),
    );
    report.record(
        Measurement::new(scenario, config, "first_claim_to_last_completion", result.span_s).unit("s"),
    );
    report
        .record(Measurement::new(scenario, config, "wall_incl_startup", result.wall.as_secs_f64()).unit("s"));
    report.record(Measurement::new(scenario, config, "claim_statements", result.claims).unit("claims"));
    report
        .record(Measurement::new(scenario, config, "tasks_per_claim", result.tasks_per_claim).unit("tasks"));
    report.record(
        Measurement::new(
            scenario,
            config,
            "tasks_not_run_exactly_once",
            result.not_run_exactly_once as f64,
        )
        .unit("tasks")
        .check(Target::AtMost(0.0)),
    );
}

pub fn per_second(count: i64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        count as f64 / seconds
    } else {
        0.0
    }
}

pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}
