//! Large bodies: many clients at once create tasks with payloads of nearly the 1 MiB body
//! limit, at TaskPilot and at DTP directly, and both processes' memory is read: the peak
//! during the burst, and how far it falls once they are idle. Then the web tasks are bound
//! (TaskPilot reads each payload back and submits it to DTP) and the peaks read again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::Semaphore;

use crate::engine_db::EngineDatabase;
use crate::report::{Measurement, Report, Target};
use crate::scratch_db::ScratchName;
use crate::services::{Bench, EngineSettings};
use crate::Plan;

/// A payload this size fits TaskPilot's body limit, and DTP's once TaskPilot wraps it.
const PAYLOAD_BYTES: usize = 1024 * 1024 - 4 * 1024;
/// Memory given back once the burst is over, as the issue asks.
const SETTLED_MIB: f64 = 100.0;
/// Tries of one bind.
const BIND_TRIES: usize = 20;

pub async fn run(bench: &Bench, plan: &Plan, report: &mut Report) -> anyhow::Result<()> {
    let dtp_db = EngineDatabase::create(&bench.server, "lb_dtp")?;
    let web_db = ScratchName::new(&bench.server, "lb_web");
    let web_http = bench.taskpilot_client(&web_db.name)?;
    let settings = EngineSettings::api_only();
    let mut services = vec![bench.engine("lb-engine", &dtp_db, &settings)?];
    bench.start_all(&mut services).await?;
    services.push(bench.taskpilot(&web_db.name, &services[0], &settings)?);
    bench.start_all(&mut services[1..]).await?;
    let base = Arc::new(services[1].base_url());

    let web_body = Arc::new(json!({"type": "bench", "payload": {"blob": "x".repeat(PAYLOAD_BYTES)}}));
    let engine_body = Arc::new(json!({"type": "demo", "payload": {"blob": "x".repeat(PAYLOAD_BYTES)}}));
    let engine_base = services[0].base_url();
    // Each service gets as many requests at once.
    let web_gate = Arc::new(Semaphore::new(plan.large_body_clients));
    let engine_gate = Arc::new(Semaphore::new(plan.large_body_clients));
    let started = Instant::now();
    let mut requests = Vec::new();
    let web_url = format!("{base}/api/tasks");
    let engine_url = format!("{engine_base}/tasks");
    for _ in 0..plan.large_bodies {
        requests.push(spawn_create(&web_http, &web_url, &web_body, &web_gate));
        requests.push(spawn_create(&bench.http, &engine_url, &engine_body, &engine_gate));
    }
    let mut errors = 0u64;
    let mut web_tasks = Vec::new();
    for (i, request) in requests.into_iter().enumerate() {
        match request.await? {
            Some(id) if i % 2 == 0 => web_tasks.push(id),
            Some(_) => {}
            None => errors += 1,
        }
    }
    let burst = started.elapsed();
    let peak = |i: usize| services[i].peak_rss_kib().unwrap_or(0) as f64 / 1024.0;
    let (engine_peak, taskpilot_peak) = (peak(0), peak(1));

    // Then the services sit idle: how soon do they give the memory back?
    let settle = Duration::from_secs(plan.large_body_settle_s);
    let settled_at = Instant::now() + settle;
    let rss = |i: usize| services[i].rss_kib().unwrap_or(0) as f64 / 1024.0;
    let idle_since = Instant::now();
    while Instant::now() < settled_at && (rss(0) > SETTLED_MIB || rss(1) > SETTLED_MIB) {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let settled_after = idle_since.elapsed();
    let (engine_after, taskpilot_after) = (rss(0), rss(1));

    // Binding: TaskPilot reads each payload back and sends it to DTP, as many at once.
    let binds: Vec<_> = web_tasks
        .into_iter()
        .map(|id| {
            let (http, url, gate) = (
                web_http.clone(),
                format!("{base}/api/tasks/{id}/scheduler"),
                Arc::clone(&web_gate),
            );
            tokio::spawn(async move {
                let _slot = gate.acquire_owned().await.ok()?;
                bind(&http, &url).await
            })
        })
        .collect();
    for bind in binds {
        if bind.await?.is_none() {
            errors += 1;
        }
    }
    let (engine_bind_peak, taskpilot_bind_peak) = (peak(0), peak(1));
    Bench::stop_all(&mut services);

    let config = format!(
        "{} x 1 MiB, {} at once",
        plan.large_bodies, plan.large_body_clients
    );
    let scenario = "large-bodies";
    report.record(
        Measurement::new(
            scenario,
            &config,
            "creates_per_s",
            2.0 * plan.large_bodies as f64 / burst.as_secs_f64(),
        )
        .unit("tasks/s"),
    );
    for (metric, value) in [
        ("engine_peak_rss", engine_peak),
        ("taskpilot_peak_rss", taskpilot_peak),
    ] {
        report.record(
            Measurement::new(scenario, &config, metric, value)
                .unit("MiB")
                .goal(Target::AtMost(300.0)),
        );
    }
    for (metric, value) in [
        ("engine_rss_after_idle", engine_after),
        ("taskpilot_rss_after_idle", taskpilot_after),
    ] {
        report.record(
            Measurement::new(scenario, &config, metric, value)
                .unit("MiB")
                .goal(Target::AtMost(SETTLED_MIB)),
        );
    }
    report.record(
        Measurement::new(
            scenario,
            &config,
            "idle_until_settled",
            settled_after.as_secs_f64(),
        )
        .unit("s"),
    );
    for (metric, value) in [
        ("engine_peak_rss_with_binds", engine_bind_peak),
        ("taskpilot_peak_rss_with_binds", taskpilot_bind_peak),
    ] {
        report.record(Measurement::new(scenario, &config, metric, value).unit("MiB"));
    }
    report.record(
        Measurement::new(scenario, &config, "errors", errors as f64)
            .unit("requests")
            .check(Target::AtMost(0.0)),
    );
    Ok(())
}

/// Binds a web task, again after a 503 (the scheduler's queue was too long for TaskPilot's
/// timeout; a bind is idempotent): whether it ended bound.
async fn bind(http: &reqwest::Client, url: &str) -> Option<()> {
    for _ in 0..BIND_TRIES {
        let answer = http
            .post(url)
            .json(&json!({"schedulerType": "demo"}))
            .send()
            .await
            .ok()?;
        match answer.status().as_u16() {
            200 | 201 => return Some(()),
            503 => continue,
            status => {
                eprintln!(
                    "dtp-bench: {url} answered {status}: {}",
                    answer.text().await.unwrap_or_default()
                );
                return None;
            }
        }
    }
    eprintln!("dtp-bench: {url} still unavailable after {BIND_TRIES} tries");
    None
}

/// `create` on a task of its own, once `gate` lets it through.
fn spawn_create(
    http: &reqwest::Client,
    url: &str,
    body: &Arc<serde_json::Value>,
    gate: &Arc<Semaphore>,
) -> tokio::task::JoinHandle<Option<i64>> {
    let (http, url, body, gate) = (http.clone(), url.to_owned(), Arc::clone(body), Arc::clone(gate));
    tokio::spawn(async move {
        let _slot = gate.acquire_owned().await.ok()?;
        create(&http, &url, &body).await
    })
}

/// POSTs `body` to `url` expecting 201; the new resource's id, `None` on anything else.
async fn create(http: &reqwest::Client, url: &str, body: &serde_json::Value) -> Option<i64> {
    let created = http.post(url).json(body).send().await.ok()?;
    if created.status().as_u16() != 201 {
        let status = created.status();
        eprintln!(
            "dtp-bench: {url} answered {status}: {}",
            created.text().await.unwrap_or_default()
        );
        return None;
    }
    created.json::<serde_json::Value>().await.ok()?["id"].as_i64()
}
