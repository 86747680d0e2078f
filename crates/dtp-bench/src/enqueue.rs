//! Enqueue: one client posts full batches to `POST /tasks/batch` one after another, on an
//! engine whose worker is off, so the figure is the API's and the insert's alone.

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

pub async fn run(bench: &Bench, plan: &Plan, report: &mut Report) -> anyhow::Result<()> {
    let mut db = EngineDatabase::create(&bench.server, "enqueue")?;
    let mut engine = [bench.engine("enqueue-engine", &db, &EngineSettings::api_only())?];
    bench.start_all(&mut engine).await?;
    let url = format!("{}/tasks/batch", engine[0].base_url());

    // Bodies are built before the clock starts: the client's JSON is not what we measure.
    let batches: Vec<Vec<u8>> = (0..plan.enqueue_tasks.div_ceil(plan.batch_size))
        .map(|b| {
            let first = b * plan.batch_size;
            let last = (first + plan.batch_size).min(plan.enqueue_tasks);
            let tasks: Vec<_> = (first..last)
                .map(|n| json!({"type": "demo", "payload": {"n": n}}))
                .collect();
            serde_json::to_vec(&json!({ "tasks": tasks }))
        })
        .collect::<Result<_, _>>()?;
    let mut round_trips: Vec<Duration> = Vec::with_capacity(batches.len());
    db.checkpoint()?;
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
    let elapsed = started.elapsed();
    Bench::stop_all(&mut engine);
    let stored = db.count_tasks()?;

    let config = format!("batch={} worker off", plan.batch_size);
    let sent = i64::try_from(plan.enqueue_tasks)?;
    report.record(
        Measurement::new(
            "enqueue",
            &config,
            "tasks_per_s",
            per_second(sent, elapsed.as_secs_f64()),
        )
        .unit("tasks/s")
        .goal(Target::AtLeast(ENQUEUE_TARGET_TASKS_PER_S)),
    );
    let latencies = Latencies::of(&round_trips);
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
