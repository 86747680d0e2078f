//! The change feed's costs and lags, each measured against its own baseline in the same run:
//! `feed-cost`, the tuned drain with the feed's triggers on and off (alternating rounds on
//! fresh databases, the same build); `retention`, pickup latency while the cleaner deletes a
//! long history, and without one; `mirror`, how long a change takes to reach TaskPilot's
//! mirror while tasks are created and bound through TaskPilot at a fixed rate.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use diesel::prelude::*;
use diesel::sql_types::Double;
use serde_json::{json, Value};

use dtp_chaos::invariants::count;

use crate::drain::drain;
use crate::engine_db::EngineDatabase;
use crate::pickup::{measure, record_pickup};
use crate::report::{Latencies, Measurement, Report, Target};
use crate::scratch_db::ScratchName;
use crate::services::{Bench, EngineSettings};
use crate::Plan;

/// Issue target: the drain with the feed on within 10 % of the same build without it.
const FEED_COST_GOAL_PERCENT: f64 = 90.0;
/// Issue target: a change reaches TaskPilot's record within this long (p99).
const MIRROR_LAG_GOAL_MS: f64 = 100.0;
const MIRROR_PATIENCE: Duration = Duration::from_secs(120);

/// `feed-cost`: rounds of the tuned drain, feed on then off, each on a fresh database.
pub async fn run_cost(bench: &Bench, plan: &Plan, report: &mut Report) -> anyhow::Result<()> {
    let settings = plan.tuned();
    let (mut on, mut off) = (Vec::new(), Vec::new());
    for _ in 0..plan.feed_rounds {
        for feed in [true, false] {
            let mut db = EngineDatabase::create(&bench.server, "feed")?;
            if !feed {
                db.disable_change_feed()?;
            }
            let result = drain(bench, &mut db, &settings, 1, plan.feed_tasks).await?;
            if result.not_run_exactly_once > 0 {
                bail!("{} tasks did not run exactly once", result.not_run_exactly_once);
            }
            if feed { &mut on } else { &mut off }.push(result.tasks_per_s);
        }
    }
    let config = format!("{} tasks, {}", plan.feed_tasks, settings.label());
    let (on, off) = (median(&mut on), median(&mut off));
    report.record(
        Measurement::new("feed-cost", format!("{config} feed on"), "tasks_per_s", on).unit("tasks/s"),
    );
    report.record(
        Measurement::new("feed-cost", format!("{config} feed off"), "tasks_per_s", off).unit("tasks/s"),
    );
    report.record(
        Measurement::new(
            "feed-cost",
            &config,
            "feed_on_vs_off",
            on / off.max(f64::EPSILON) * 100.0,
        )
        .unit("%")
        .goal(Target::AtLeast(FEED_COST_GOAL_PERCENT)),
    );
    Ok(())
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// `retention`: pickup on an engine whose cleaner starts deleting a long finished history at
/// once (retention of an hour), then on a fresh database with nothing to delete.
pub async fn run_retention(bench: &Bench, plan: &Plan, report: &mut Report) -> anyhow::Result<()> {
    let cleaning = EngineSettings {
        extra_env: vec![
            ("DTP_FINISHED_RETENTION_HOURS", "1".to_owned()),
            ("DTP_CLEANUP_INTERVAL_MS", "100".to_owned()),
        ],
        ..plan.tuned()
    };
    let mut db = EngineDatabase::create(&bench.server, "retention")?;
    db.seed_history(plan.retention_rows, 0)?;
    let before = db.count_tasks()?;
    let during = measure(bench, &mut db, &cleaning, plan).await?;
    let left = db.count_tasks()?;
    let config = format!("{} during cleanup of {before} tasks", cleaning.label());
    record_pickup(report, "retention", &config, plan, &during);
    report.record(
        Measurement::new(
            "retention",
            &config,
            "tasks_deleted_meanwhile",
            (before - left).max(0) as f64,
        )
        .unit("tasks"),
    );
    let mut quiet_db = EngineDatabase::create(&bench.server, "retention_quiet")?;
    let quiet = measure(bench, &mut quiet_db, &plan.tuned(), plan).await?;
    record_pickup(
        report,
        "retention",
        &format!("{} no cleanup", plan.tuned().label()),
        plan,
        &quiet,
    );
    Ok(())
}

/// `mirror`: clients create and bind web tasks through TaskPilot at `mirror_rate` for
/// `mirror_s`; each event's lag is from the engine's change to TaskPilot's write of it.
pub async fn run_mirror(bench: &Bench, plan: &Plan, report: &mut Report) -> anyhow::Result<()> {
    let settings = plan.tuned();
    let dtp_db = EngineDatabase::create(&bench.server, "mirror_dtp")?;
    let web_db = ScratchName::new(&bench.server, "mirror_web");
    let web_http = bench.taskpilot_client(&web_db.name)?;
    let mut services = vec![bench.engine("mirror-engine", &dtp_db, &settings)?];
    bench.start_all(&mut services).await?;
    let taskpilot = bench.taskpilot(&web_db.name, &services[0], &settings)?;
    services.push(taskpilot);
    bench.start_all(&mut services[1..]).await?;
    let base = Arc::new(services[1].base_url());

    let total = plan.mirror_rate * plan.mirror_s;
    let every = Duration::from_secs_f64(1.0 / plan.mirror_rate.max(1) as f64);
    let started = tokio::time::Instant::now();
    let mut pairs = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    let gate = Arc::new(tokio::sync::Semaphore::new(plan.mirror_clients));
    for n in 0..total {
        tokio::time::sleep_until(started + every.mul_f64(n as f64)).await;
        let permit = Arc::clone(&gate).acquire_owned().await?;
        let (http, base) = (web_http.clone(), Arc::clone(&base));
        pairs.push(tokio::spawn(async move {
            let bound = create_and_bind(&http, &base).await;
            drop(permit);
            bound
        }));
    }
    let mut errors = 0u64;
    for pair in pairs {
        if !matches!(pair.await, Ok(true)) {
            errors += 1;
        }
    }
    let sent_for = started.elapsed().as_secs_f64();
    let mut web = PgConnection::establish(&bench.server.with_database(&web_db.name))?;
    let mut dtp = PgConnection::establish(dtp_db.url())?;
    wait_until_mirrored(&mut dtp, &mut web).await?;
    Bench::stop_all(&mut services);

    let lags = lags_ms(&mut web)?;
    let config = format!(
        "{}/s offered for {} s, {}",
        plan.mirror_rate,
        plan.mirror_s,
        settings.label()
    );
    let lag = Latencies::of_millis(lags);
    report.record(
        Measurement::new(
            "mirror",
            &config,
            "bound_per_s",
            (total - errors) as f64 / sent_for,
        )
        .unit("tasks/s"),
    );
    report.record(Measurement::new("mirror", &config, "lag_p50", lag.p50_ms).unit("ms"));
    report.record(
        Measurement::new("mirror", &config, "lag_p99", lag.p99_ms)
            .unit("ms")
            .goal(Target::AtMost(MIRROR_LAG_GOAL_MS)),
    );
    report.record(Measurement::new("mirror", &config, "lag_max", lag.max_ms).unit("ms"));
    report.record(
        Measurement::new("mirror", &config, "errors", errors as f64)
            .unit("requests")
            .check(Target::AtMost(0.0)),
    );
    Ok(())
}

/// `POST /api/tasks` then `POST /api/tasks/{id}/scheduler` (demo); whether both succeeded.
async fn create_and_bind(http: &reqwest::Client, base: &str) -> bool {
    let created = async {
        let response = http
            .post(format!("{base}/api/tasks"))
            .json(&json!({"type": "bench"}))
            .send()
            .await
            .ok()?;
        (response.status().as_u16() == 201).then_some(())?;
        response.json::<Value>().await.ok()?["id"].as_i64()
    };
    let Some(id) = created.await else { return false };
    http.post(format!("{base}/api/tasks/{id}/scheduler"))
        .json(&json!({"schedulerType": "demo"}))
        .send()
        .await
        .is_ok_and(|r| r.status().as_u16() == 201)
}

/// Waits until TaskPilot applied every event the engine wrote.
async fn wait_until_mirrored(dtp: &mut PgConnection, web: &mut PgConnection) -> anyhow::Result<()> {
    let deadline = Instant::now() + MIRROR_PATIENCE;
    loop {
        let open = count(
            dtp,
            "SELECT count(*) AS n FROM tasks WHERE status IN ('PENDING', 'RUNNING')",
        )?;
        let written = count(dtp, "SELECT count(*) AS n FROM task_events")?;
        let applied = count(web, "SELECT count(*) AS n FROM execution_events")?;
        if open == 0 && applied >= written {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the mirror applied {applied} of {written} events ({open} tasks open) after {MIRROR_PATIENCE:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Each applied event's lag: from the engine's change to TaskPilot's write (one server's clock).
fn lags_ms(web: &mut PgConnection) -> anyhow::Result<Vec<f64>> {
    #[derive(QueryableByName)]
    struct Lag {
        #[diesel(sql_type = Double)]
        ms: f64,
    }
    Ok(diesel::sql_query(
        "SELECT (EXTRACT(EPOCH FROM applied_at - at) * 1000)::float8 AS ms FROM execution_events",
    )
    .load::<Lag>(web)
    .context("read the mirror's lags")?
    .into_iter()
    .map(|l| l.ms)
    .collect())
}
