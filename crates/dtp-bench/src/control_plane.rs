//! Control plane: concurrent clients create a web task and bind it to a `demo` scheduler
//! task through TaskPilot, then read its execution view once, for a fixed time. Round
//! trips are timed by the client; every unexpected answer counts as an error.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::engine_db::EngineDatabase;
use crate::report::{Latencies, Measurement, Report, Target};
use crate::scratch_db::ScratchName;
use crate::services::{Bench, EngineSettings};
use crate::Plan;

/// What one client saw.
#[derive(Default)]
struct ClientTally {
    create_and_bind: Vec<Duration>,
    execution_reads: Vec<Duration>,
    errors: u64,
}

/// The scenario with authentication on (as deployed) and, in the same run, off: what keys,
/// tokens and quotas cost on the path every web task takes.
pub async fn run(bench: &Bench, plan: &Plan, report: &mut Report) -> anyhow::Result<()> {
    run_with(bench, plan, report, plan.tuned()).await?;
    run_with(bench, plan, report, plan.tuned().without_auth()).await
}

async fn run_with(
    bench: &Bench,
    plan: &Plan,
    report: &mut Report,
    settings: EngineSettings,
) -> anyhow::Result<()> {
    let mut dtp_db = EngineDatabase::create(&bench.server, "cp_dtp")?;
    let web_db = ScratchName::new(&bench.server, "cp_web");
    // The key is made on TaskPilot's database before TaskPilot starts on it.
    let web_http = bench.taskpilot_client(&web_db.name)?;
    let mut services = vec![bench.engine("cp-engine", &dtp_db, &settings)?];
    bench.start_all(&mut services).await?;
    let taskpilot = bench.taskpilot(&web_db.name, &services[0], &settings)?;
    services.push(taskpilot);
    bench.start_all(&mut services[1..]).await?;
    let base = Arc::new(services[1].base_url());

    dtp_db.checkpoint()?;
    let duration = Duration::from_secs(plan.control_plane_s);
    let end = Instant::now() + duration;
    let clients: Vec<_> = (0..plan.clients)
        .map(|_| tokio::spawn(client(web_http.clone(), Arc::clone(&base), end)))
        .collect();
    let mut tally = ClientTally::default();
    for c in clients {
        let seen = c.await?;
        tally.create_and_bind.extend(seen.create_and_bind);
        tally.execution_reads.extend(seen.execution_reads);
        tally.errors += seen.errors;
    }
    Bench::stop_all(&mut services);

    let config = format!("{} clients, {}", plan.clients, settings.label());
    let scenario = "control-plane";
    report.record(
        Measurement::new(
            scenario,
            &config,
            "create_and_bind_per_s",
            tally.create_and_bind.len() as f64 / duration.as_secs_f64(),
        )
        .unit("pairs/s"),
    );
    let pairs = Latencies::of(&tally.create_and_bind);
    report.record(Measurement::new(scenario, &config, "create_and_bind_p50", pairs.p50_ms).unit("ms"));
    report.record(
        Measurement::new(scenario, &config, "create_and_bind_p99", pairs.p99_ms)
            .unit("ms")
            .goal(Target::AtMost(25.0)),
    );
    let reads = Latencies::of(&tally.execution_reads);
    report.record(Measurement::new(scenario, &config, "execution_read_p50", reads.p50_ms).unit("ms"));
    report.record(
        Measurement::new(scenario, &config, "execution_read_p99", reads.p99_ms)
            .unit("ms")
            .goal(Target::AtMost(10.0)),
    );
    report.record(
        Measurement::new(scenario, &config, "errors", tally.errors as f64)
            .unit("requests")
            .check(Target::AtMost(0.0)),
    );
    Ok(())
}

/// One user until `end`: create → bind (timed together), then one read of the execution view.
async fn client(http: reqwest::Client, base: Arc<String>, end: Instant) -> ClientTally {
    let mut tally = ClientTally::default();
    while Instant::now() < end {
        let started = Instant::now();
        let created = call(
            http.post(format!("{base}/api/tasks"))
                .json(&json!({"type": "bench", "payload": {"at": "control-plane"}})),
            201,
        )
        .await;
        let Some(id) = created.and_then(|task| task["id"].as_i64()) else {
            tally.errors += 1;
            continue;
        };
        let bind = http
            .post(format!("{base}/api/tasks/{id}/scheduler"))
            .json(&json!({"schedulerType": "demo"}));
        if call(bind, 201).await.is_none() {
            tally.errors += 1;
            continue;
        }
        tally.create_and_bind.push(started.elapsed());
        let read_started = Instant::now();
        if call(http.get(format!("{base}/api/tasks/{id}/execution")), 200)
            .await
            .is_none()
        {
            tally.errors += 1;
            continue;
        }
        tally.execution_reads.push(read_started.elapsed());
    }
    tally
}

/// Sends a request expecting `expected`; the JSON answer, or `None` for anything else.
async fn call(request: reqwest::RequestBuilder, expected: u16) -> Option<Value> {
    let response = request.send().await.ok()?;
    if response.status().as_u16() != expected {
        eprintln!(
            "dtp-bench: unexpected {}: {}",
            response.status(),
            response.text().await.unwrap_or_default()
        );
        return None;
    }
    response.json().await.ok()
}
