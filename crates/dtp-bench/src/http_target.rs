//! HTTP targets: a no-op receiver in this process answers 200 to every delivery on loopback.
//! A drain of tasks of an HTTP type with the tuned engine, then tasks sent one at a time to
//! an idle engine, each timed from its insert (`created_at`) to its arrival at the receiver.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use crate::drain::{drain_of_type, record_drain};
use crate::engine_db::EngineDatabase;
use crate::pickup::{submit, wait_until_finished};
use crate::report::{Latencies, Measurement, Report, Target};
use crate::services::{Bench, EngineSettings};
use crate::Plan;

/// The HTTP type the scenario declares.
const HOOK_TYPE: &str = "hook";
/// A started engine is left alone this long before the first task, so that it is idle.
const SETTLE: Duration = Duration::from_millis(500);
/// Issue targets: the tuned drain, and pickup to the receiver's arrival at rest.
const DRAIN_GOAL_TASKS_PER_S: f64 = 10_000.0;
const PICKUP_P50_GOAL_MS: f64 = 3.0;

/// When each task's first delivery arrived, by task id.
type Arrivals = Arc<Mutex<HashMap<i64, DateTime<Utc>>>>;

/// Starts the receiver; answers its URL and the arrivals it records.
async fn start_receiver() -> anyhow::Result<(String, Arrivals)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    let arrivals: Arrivals = Arc::default();
    let recorded = Arc::clone(&arrivals);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            tokio::spawn(answer_each(stream, Arc::clone(&recorded)));
        }
    });
    Ok((url, arrivals))
}

/// Answers every request on one kept-alive connection with an empty 200.
async fn answer_each(stream: TcpStream, arrivals: Arrivals) {
    let mut stream = BufReader::new(stream);
    let mut line = String::new();
    let mut body = Vec::new();
    loop {
        let (mut length, mut task_id) = (0usize, None);
        line.clear();
        if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        loop {
            line.clear();
            if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
                return;
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            let Some((name, value)) = header.split_once(':') else {
                continue;
            };
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            } else if name.eq_ignore_ascii_case("dtp-task-id") {
                task_id = value.trim().parse::<i64>().ok();
            }
        }
        let arrived = Utc::now();
        if let Some(id) = task_id {
            arrivals
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(id)
                .or_insert(arrived);
        }
        body.resize(length, 0);
        if stream.read_exact(&mut body).await.is_err()
            || stream
                .get_mut()
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                .await
                .is_err()
        {
            return;
        }
    }
}

/// The `http-target` scenario: a drain and a paced pickup, each on a fresh database.
pub async fn run(bench: &Bench, plan: &Plan, report: &mut Report) -> anyhow::Result<()> {
    let (url, arrivals) = start_receiver().await?;
    let types_file = bench.run_dir.join("http-target-types.toml");
    std::fs::write(
        &types_file,
        format!("[types.{HOOK_TYPE}]\nkind = \"http\"\nurl = \"{url}\"\n"),
    )
    .context("write the types file")?;
    let settings = EngineSettings {
        types_file: Some(types_file),
        ..EngineSettings::worker(
            plan.http_target_concurrency,
            Some(plan.pool_size),
            Some(plan.http_workers),
        )
    };
    let config = settings.label();

    let mut db = EngineDatabase::create(&bench.server, "http")?;
    let result = drain_of_type(bench, &mut db, &settings, HOOK_TYPE, plan.drain_tasks).await?;
    record_drain(report, "http-target", &config, &result);
    report.record(
        Measurement::new("http-target", &config, "tasks_per_s_goal", result.tasks_per_s)
            .unit("tasks/s")
            .goal(Target::AtLeast(DRAIN_GOAL_TASKS_PER_S)),
    );

    // The pickup's database numbers its tasks from 1 again.
    arrivals.lock().unwrap_or_else(PoisonError::into_inner).clear();
    let mut db = EngineDatabase::create(&bench.server, "http_pickup")?;
    db.checkpoint()?;
    let mut engine = [bench.engine("http-pickup-engine", &db, &settings)?];
    bench.start_all(&mut engine).await?;
    let tasks_url = format!("{}/tasks", engine[0].base_url());
    tokio::time::sleep(SETTLE).await;
    let mut ids = Vec::with_capacity(plan.pickup_tasks);
    let mut errors = 0;
    for n in 0..plan.pickup_tasks {
        match submit(
            &bench.http,
            &tasks_url,
            json!({"type": HOOK_TYPE, "payload": {"n": n}}),
        )
        .await
        {
            Some(id) => ids.push(id),
            None => errors += 1,
        }
        tokio::time::sleep(Duration::from_millis(plan.pickup_gap_ms)).await;
    }
    wait_until_finished(&mut db, &ids).await?;
    Bench::stop_all(&mut engine);
    let arrived = arrivals.lock().unwrap_or_else(PoisonError::into_inner).clone();
    let to_arrival = db
        .created_at(&ids)?
        .into_iter()
        .map(|(id, created)| {
            let at = arrived
                .get(&id)
                .with_context(|| format!("task {id} never reached the receiver"))?;
            Ok((*at - created).as_seconds_f64() * 1_000.0)
        })
        .collect::<anyhow::Result<Vec<f64>>>()?;
    let latencies = Latencies::of_millis(to_arrival);
    let paced = format!("{config} paced {}ms", plan.pickup_gap_ms);
    report.record(
        Measurement::new("http-target", &paced, "to_arrival_p50", latencies.p50_ms)
            .unit("ms")
            .goal(Target::AtMost(PICKUP_P50_GOAL_MS)),
    );
    report.record(Measurement::new("http-target", &paced, "to_arrival_p99", latencies.p99_ms).unit("ms"));
    report.record(
        Measurement::new("http-target", &paced, "submit_errors", errors as f64)
            .unit("requests")
            .check(Target::AtMost(0.0)),
    );
    Ok(())
}
