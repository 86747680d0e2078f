//! Pickup latency: how long a task waits between its insert and its handler's start. The
//! insert's moment is the engine's `created_at`; the handler's start is the engine's own log
//! line as the handler is about to run (same clock, microseconds). The claim's start (first
//! attempt `started_at`) is reported beside it, and for the paced phase the client's send
//! (the bench's clock). First tasks sent one at a time to an idle engine, then a steady
//! open-loop load through `POST /tasks`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::engine_db::EngineDatabase;
use crate::report::{Latencies, Measurement, Report, Target};
use crate::services::{Bench, EngineSettings};
use crate::Plan;

/// A started engine is left alone this long before the first task, so that it is idle.
const SETTLE: Duration = Duration::from_millis(500);
/// How long the tasks of a phase may take to finish once all were sent.
const FINISH_PATIENCE: Duration = Duration::from_secs(120);
const POLL_EVERY: Duration = Duration::from_millis(10);

/// Pickup latencies of both phases.
#[derive(Debug, Clone, Copy)]
pub struct PickupResult {
    /// Insert to handler start.
    pub paced: Latencies,
    /// The client's send to handler start (the request's round trip to the insert included).
    pub paced_from_send: Latencies,
    pub load: Latencies,
    /// Insert to the claim statement's start.
    pub paced_claim: Latencies,
    pub load_claim: Latencies,
    /// Tasks per second actually sent in the load phase.
    pub sent_per_s: f64,
    /// Tasks per second the engine got through in the load phase (first insert to last
    /// completion); below `sent_per_s` means a queue built up.
    pub completed_per_s: f64,
    /// Furthest a send fell behind its schedule (the client's own lag), ms.
    pub max_send_lag_ms: f64,
    /// Submissions not answered 201.
    pub errors: u64,
}

/// Runs both phases against one engine with `settings` on `db`.
pub async fn measure(
    bench: &Bench,
    db: &mut EngineDatabase,
    settings: &EngineSettings,
    plan: &Plan,
) -> anyhow::Result<PickupResult> {
    db.checkpoint()?;
    let settings = EngineSettings {
        log_handler_starts: true,
        ..settings.clone()
    };
    let mut engine = [bench.engine("pickup-engine", db, &settings)?];
    bench.start_all(&mut engine).await?;
    let url = format!("{}/tasks", engine[0].base_url());
    tokio::time::sleep(SETTLE).await;

    let paced = send_paced(bench, &url, plan).await;
    let paced_ids: Vec<i64> = paced.sent.iter().map(|(id, _)| *id).collect();
    let mut errors = paced.errors;
    wait_until_finished(db, &paced_ids).await?;

    let load = offer_load(bench, &url, plan.load_rate, plan.load_s).await;
    errors += load.errors;
    wait_until_finished(db, &load.ids).await?;
    let completed_per_s = db.completion_rate(&load.ids)?;
    Bench::stop_all(&mut engine);
    let handler_starts = handler_starts(&engine[0].log_path())?;
    Ok(PickupResult {
        paced: Latencies::of_millis(to_handler_start_ms(db, &paced_ids, &handler_starts)?),
        paced_from_send: Latencies::of_millis(from_send_ms(&paced.sent, &handler_starts)?),
        load: Latencies::of_millis(to_handler_start_ms(db, &load.ids, &handler_starts)?),
        paced_claim: Latencies::of_millis(db.claim_latencies_ms(&paced_ids)?),
        load_claim: Latencies::of_millis(db.claim_latencies_ms(&load.ids)?),
        sent_per_s: load.sent_per_s,
        completed_per_s,
        max_send_lag_ms: load.max_send_lag.as_secs_f64() * 1_000.0,
        errors,
    })
}

/// When each task's first handler started, from the engine's JSON log: the first
/// "attempt started" line of the task's `attempt` span.
fn handler_starts(log: &std::path::Path) -> anyhow::Result<HashMap<i64, DateTime<Utc>>> {
    let text = std::fs::read_to_string(log).with_context(|| format!("read {}", log.display()))?;
    let mut starts = HashMap::new();
    for line in text.lines() {
        let Ok(entry) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if entry["message"] != "attempt started" {
            continue;
        }
        let (Some(id), Some(at)) = (entry["span"]["task.id"].as_i64(), entry["timestamp"].as_str()) else {
            continue;
        };
        let at = DateTime::parse_from_rfc3339(at).with_context(|| format!("timestamp {at:?}"))?;
        starts.entry(id).or_insert(at.with_timezone(&Utc));
    }
    Ok(starts)
}

/// Milliseconds from each task's insert to its handler's start; a task without a logged
/// start fails the run rather than leaving the figure silently short.
fn to_handler_start_ms(
    db: &mut EngineDatabase,
    ids: &[i64],
    starts: &HashMap<i64, DateTime<Utc>>,
) -> anyhow::Result<Vec<f64>> {
    db.created_at(ids)?
        .into_iter()
        .map(|(id, created)| {
            let started = starts
                .get(&id)
                .with_context(|| format!("no handler start logged for task {id}"))?;
            Ok((*started - created).as_seconds_f64() * 1_000.0)
        })
        .collect()
}

/// Milliseconds from each task's send (the bench's clock) to its handler's start (the
/// engine's log; the same machine's clock).
fn from_send_ms(
    sent: &[(i64, DateTime<Utc>)],
    starts: &HashMap<i64, DateTime<Utc>>,
) -> anyhow::Result<Vec<f64>> {
    sent.iter()
        .map(|(id, at)| {
            let started = starts
                .get(id)
                .with_context(|| format!("no handler start logged for task {id}"))?;
            Ok((*started - *at).as_seconds_f64() * 1_000.0)
        })
        .collect()
}

/// Tasks sent one at a time to an idle engine, each with the moment its request left.
struct PacedTasks {
    sent: Vec<(i64, DateTime<Utc>)>,
    errors: u64,
}

/// Sends `plan.pickup_tasks` `demo` tasks through `POST /tasks` one after another, each
/// `plan.pickup_gap_ms` after the previous one's answer.
async fn send_paced(bench: &Bench, url: &str, plan: &Plan) -> PacedTasks {
    let mut paced = PacedTasks {
        sent: Vec::with_capacity(plan.pickup_tasks),
        errors: 0,
    };
    for n in 0..plan.pickup_tasks {
        let at = Utc::now();
        match submit(
            &bench.http,
            url,
            json!({"type": "demo", "payload": {"phase": "paced", "n": n}}),
        )
        .await
        {
            Some(id) => paced.sent.push((id, at)),
            None => paced.errors += 1,
        }
        tokio::time::sleep(Duration::from_millis(plan.pickup_gap_ms)).await;
    }
    paced
}

/// Only the paced phase, on a fresh database: each task timed from the client's send to its
/// handler's start. A task not answered 201 fails the run.
pub async fn idle_from_send(
    bench: &Bench,
    settings: &EngineSettings,
    plan: &Plan,
) -> anyhow::Result<Latencies> {
    let mut db = EngineDatabase::create(&bench.server, "pickup")?;
    db.checkpoint()?;
    let settings = EngineSettings {
        log_handler_starts: true,
        ..settings.clone()
    };
    let mut engine = [bench.engine("idle-pickup-engine", &db, &settings)?];
    bench.start_all(&mut engine).await?;
    tokio::time::sleep(SETTLE).await;
    let paced = send_paced(bench, &format!("{}/tasks", engine[0].base_url()), plan).await;
    if paced.errors > 0 {
        bail!("{} paced tasks were not accepted", paced.errors);
    }
    let ids: Vec<i64> = paced.sent.iter().map(|(id, _)| *id).collect();
    wait_until_finished(&mut db, &ids).await?;
    Bench::stop_all(&mut engine);
    let starts = handler_starts(&engine[0].log_path())?;
    Ok(Latencies::of_millis(from_send_ms(&paced.sent, &starts)?))
}

struct OfferedLoad {
    ids: Vec<i64>,
    errors: u64,
    sent_per_s: f64,
    max_send_lag: Duration,
}

/// Sends `rate` tasks per second for `seconds` on a fixed schedule, never waiting for answers.
async fn offer_load(bench: &Bench, url: &str, rate: u64, seconds: u64) -> OfferedLoad {
    let total = rate * seconds;
    let every = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
    let ids = Arc::new(Mutex::new(Vec::with_capacity(
        usize::try_from(total).unwrap_or(0),
    )));
    let mut answers = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    let mut max_send_lag = Duration::ZERO;
    let start = tokio::time::Instant::now();
    for n in 0..total {
        let due = start + every.mul_f64(n as f64);
        tokio::time::sleep_until(due).await;
        max_send_lag = max_send_lag.max(tokio::time::Instant::now() - due);
        let (http, url, ids) = (bench.http.clone(), url.to_owned(), Arc::clone(&ids));
        answers.push(tokio::spawn(async move {
            let id = submit(
                &http,
                &url,
                json!({"type": "demo", "payload": {"phase": "load", "n": n}}),
            )
            .await;
            if let Some(id) = id {
                ids.lock().unwrap_or_else(PoisonError::into_inner).push(id);
            }
            id.is_some()
        }));
    }
    let sent_for = start.elapsed();
    let mut errors = 0;
    for answer in answers {
        if !matches!(answer.await, Ok(true)) {
            errors += 1;
        }
    }
    let ids = std::mem::take(&mut *ids.lock().unwrap_or_else(PoisonError::into_inner));
    OfferedLoad {
        ids,
        errors,
        sent_per_s: total as f64 / sent_for.as_secs_f64().max(f64::EPSILON),
        max_send_lag,
    }
}

/// `POST /tasks`; the new task's id, or `None` for anything but a 201.
pub async fn submit(http: &reqwest::Client, url: &str, body: Value) -> Option<i64> {
    let response = http.post(url).json(&body).send().await.ok()?;
    if response.status().as_u16() != 201 {
        return None;
    }
    response.json::<Value>().await.ok()?["id"].as_i64()
}

pub async fn wait_until_finished(db: &mut EngineDatabase, ids: &[i64]) -> anyhow::Result<()> {
    let deadline = Instant::now() + FINISH_PATIENCE;
    while db.unfinished_among(ids).context("count unfinished tasks")? > 0 {
        if Instant::now() > deadline {
            bail!("{} tasks were not finished after {FINISH_PATIENCE:?}", ids.len());
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
    Ok(())
}

/// The `pickup` scenario on a fresh database.
pub async fn run(bench: &Bench, plan: &Plan, report: &mut Report) -> anyhow::Result<()> {
    let settings = plan.tuned();
    let mut db = EngineDatabase::create(&bench.server, "pickup")?;
    let result = measure(bench, &mut db, &settings, plan).await?;
    record_pickup(report, "pickup", &settings.label(), plan, &result);
    Ok(())
}

/// The label of the paced phase's figures.
pub fn paced_config(config: &str, plan: &Plan) -> String {
    format!("{config} paced {}ms", plan.pickup_gap_ms)
}

/// The label of the load phase's figures.
pub fn load_config(config: &str, plan: &Plan) -> String {
    format!("{config} load {}/s", plan.load_rate)
}

/// The figures every pickup run reports.
pub fn record_pickup(
    report: &mut Report,
    scenario: &'static str,
    config: &str,
    plan: &Plan,
    result: &PickupResult,
) {
    // Issue targets (insert to handler start): idle workers p50 <= 1.5 ms and p99 <= 5 ms;
    // under load p99 <= 20 ms.
    let paced = paced_config(config, plan);
    record_phase(
        report,
        scenario,
        &paced,
        &result.paced,
        &result.paced_claim,
        [Some(1.5), Some(5.0)],
    );
    report.record(
        Measurement::new(scenario, &paced, "from_send_p50", result.paced_from_send.p50_ms).unit("ms"),
    );
    report.record(
        Measurement::new(scenario, &paced, "from_send_p99", result.paced_from_send.p99_ms).unit("ms"),
    );
    let load = load_config(config, plan);
    record_phase(
        report,
        scenario,
        &load,
        &result.load,
        &result.load_claim,
        [None, Some(20.0)],
    );
    report.record(Measurement::new(scenario, &load, "sent_per_s", result.sent_per_s).unit("tasks/s"));
    report
        .record(Measurement::new(scenario, &load, "completed_per_s", result.completed_per_s).unit("tasks/s"));
    report
        .record(Measurement::new(scenario, &load, "client_max_send_lag", result.max_send_lag_ms).unit("ms"));
    report.record(
        Measurement::new(scenario, &load, "submit_errors", result.errors as f64)
            .unit("requests")
            .check(Target::AtMost(0.0)),
    );
}

/// One phase's latencies: to the handler's start (with the p50 and p99 ceilings the issue
/// sets, if any) and to the claim's start.
fn record_phase(
    report: &mut Report,
    scenario: &'static str,
    config: &str,
    to_handler: &Latencies,
    to_claim: &Latencies,
    [p50_goal, p99_goal]: [Option<f64>; 2],
) {
    for (metric, value, goal) in [
        ("pickup_p50", to_handler.p50_ms, p50_goal),
        ("pickup_p99", to_handler.p99_ms, p99_goal),
        ("pickup_max", to_handler.max_ms, None),
        ("to_claim_p50", to_claim.p50_ms, None),
        ("to_claim_p99", to_claim.p99_ms, None),
    ] {
        report.record(with_goal(
            Measurement::new(scenario, config, metric, value).unit("ms"),
            goal,
        ));
    }
}

/// A latency figure with its ceiling, when the issue sets one.
fn with_goal(measurement: Measurement, ceiling_ms: Option<f64>) -> Measurement {
    match ceiling_ms {
        Some(ceiling) => measurement.goal(Target::AtMost(ceiling)),
        None => measurement,
    }
}
