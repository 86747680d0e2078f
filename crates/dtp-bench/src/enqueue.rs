//! Enqueue: one client posts full batches to `POST /tasks/batch` one after another, on an
//! engine whose worker is off, so the figure is the API's and the insert's alone. The
//! drains fill their queues the same way, as a user would.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::json;

use crate::drain::per_second;
use crate::engine_db::EngineDatabase;
use crate::report::{Latencies, Measurement, Report, Target};
use crate::services::{Bench, EngineSettings};
use crate::Plan;

/// What one client must sustain with full batches.
pub const ENQUEUE_TARGET_TASKS_PER_S: f64 = 60_000.0;

/// How long one client took to post its batches.
pub struct Posted {
    /// From the first batch's send to the last batch's answer.
    pub elapsed: Duration,
    pub round_trips: Vec<Duration>,
}

/// Posts `tasks` no-op tasks of `task_type` (payload `{"n": …}`) to the engine at `base_url`
/// in batches of `batch_size`, one batch after another; any answer but 201 fails the run.
pub async fn post_batches(
    bench: &Bench,
    base_url: &str,
    task_type: &str,
    tasks: usize,
    batch_size: usize,
) -> anyhow::Result<Posted> {
    let url = format!("{base_url}/tasks/batch");
    // Bodies are built before the clock starts: the client's JSON is not what we measure.
    let batches: Vec<Vec<u8>> = (0..tasks.div_ceil(batch_size.max(1)))
        .map(|b| {
            let first = b * batch_size;
            let last = (first + batch_size).min(tasks);
            let tasks: Vec<_> = (first..last)
                .map(|n| json!({"type": task_type, "payload": {"n": n}}))
                .collect();
            serde_json::to_vec(&json!({ "tasks": tasks }))
        })
        .collect::<Result<_, _>>()?;
    let mut round_trips: Vec<Duration> = Vec::with_capacity(batches.len());
    let started = Instant::now();
    for body in batches {
        let sent = Instant::now();
        let response = bench
            .http
            .post(&url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .context("post a batch")?;
        let status = response.status();
        // The whole answer is read: a client that posts a batch wants its tasks back.
        let answer = response.bytes().await?;
        if status.as_u16() != 201 {
            bail!(
                "a batch was answered {status}: {}",
                String::from_utf8_lossy(&answer)
            );
        }
        round_trips.push(sent.elapsed());
    }
    Ok(Posted {
        elapsed: started.elapsed(),
        round_trips,
    })
}

/// Fills `db` with `tasks` due tasks of `task_type` through the API of an engine whose
/// worker is off (with the types file, authentication and HTTP workers of `settings`):
/// starts it, checkpoints, posts, stops it. How long the posting took.
pub async fn fill_through_api(
    bench: &Bench,
    db: &mut EngineDatabase,
    settings: &EngineSettings,
    task_type: &str,
    tasks: usize,
    batch_size: usize,
) -> anyhow::Result<Posted> {
    let api_only = EngineSettings {
        types_file: settings.types_file.clone(),
        auth: settings.auth,
        http_workers: settings.http_workers,
        ..EngineSettings::api_only()
    };
    let mut engine = [bench.engine("fill-engine", db, &api_only)?];
    bench.start_all(&mut engine).await?;
    let posted = match db.checkpoint() {
        Ok(()) => post_batches(bench, &engine[0].base_url(), task_type, tasks, batch_size).await,
        Err(e) => Err(e),
    };
    Bench::stop_all(&mut engine);
    posted
}

pub async fn run(bench: &Bench, plan: &Plan, report: &mut Report) -> anyhow::Result<()> {
    let mut db = EngineDatabase::create(&bench.server, "enqueue")?;
    let posted = fill_through_api(
        bench,
        &mut db,
        &EngineSettings::api_only(),
        "demo",
        plan.enqueue_tasks,
        plan.batch_size,
    )
    .await?;
    let stored = db.count_tasks()?;

    let config = format!("batch={} worker off", plan.batch_size);
    let sent = i64::try_from(plan.enqueue_tasks)?;
    report.record(
        Measurement::new(
            "enqueue",
            &config,
            "tasks_per_s",
            per_second(sent, posted.elapsed.as_secs_f64()),
        )
        .unit("tasks/s")
        .goal(Target::AtLeast(ENQUEUE_TARGET_TASKS_PER_S)),
    );
    let latencies = Latencies::of(&posted.round_trips);
    report.record(Measurement::new("enqueue", &config, "batch_p50", latencies.p50_ms).unit("ms"));
    report.record(Measurement::new("enqueue", &config, "batch_p99", latencies.p99_ms).unit("ms"));
    report.record(
        Measurement::new(
            "enqueue",
            &config,
            "tasks_not_stored_once",
            (sent - stored).abs() as f64,
        )
        .unit("tasks")
        .check(Target::AtMost(0.0)),
    );
    Ok(())
}
