//! The chaos run: engines sharing one database drain a task mix while one of them is
//! killed with SIGKILL every few seconds (and restarted), and Postgres is restarted once; a
//! TaskPilot mirroring them from the change feed is killed too, and must match them at the end.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use clap::Args;
use diesel::prelude::*;
use rand::Rng;
use service_postgres::database::{self, DatabaseUrl};

use dtp_chaos::credentials::Credentials;
use dtp_chaos::invariants;
use dtp_chaos::processes::{env_vars, free_port, sibling_binary, ServiceProcess};

const KEY_PREFIX: &str = "chaos-";

#[derive(Args, Clone)]
pub struct ChaosArgs {
    /// Engine processes sharing the database.
    #[arg(long, default_value_t = 3)]
    engines: usize,
    /// Tasks to submit (a mix of demo, demo-fail with retries and short demo-slow).
    #[arg(long, default_value_t = 3000)]
    tasks: usize,
    /// Pause between two kills.
    #[arg(long, default_value_t = 3000)]
    kill_every_ms: u64,
    /// Keep killing for at least this long, even when all tasks were submitted.
    #[arg(long, default_value_t = 20)]
    chaos_s: u64,
    /// Restart Postgres once, midway.
    #[arg(long)]
    restart_postgres: bool,
    /// Lease of a running attempt (DTP_LEASE_MS of the engines).
    #[arg(long, default_value_t = 2000)]
    lease_ms: u64,
    /// Rescuer interval (DTP_RESCUE_INTERVAL_MS of the engines).
    #[arg(long, default_value_t = 500)]
    rescue_interval_ms: u64,
    /// Give up when the tasks are not all finished this long after the chaos ends.
    #[arg(long, default_value_t = 180)]
    deadline_s: u64,
    /// Concurrent submitting clients.
    #[arg(long, default_value_t = 8)]
    clients: usize,
}

pub async fn run(server_url: &str, args: ChaosArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let server = DatabaseUrl::parse(server_url)?;
    let db_name = format!("chaos_{}_{:08x}", std::process::id(), rand::random::<u32>());
    let db_url = server.with_database(&db_name);
    let run_dir = std::env::temp_dir().join(&db_name);
    std::fs::create_dir_all(&run_dir)?;
    let engine_bin = sibling_binary("dtp-engine")?;
    let credentials = Credentials::create(&run_dir)?;
    let http = credentials.engine_client(Duration::from_secs(10), usize::MAX)?;

    let mut engines = Vec::with_capacity(args.engines);
    for n in 0..args.engines {
        let port = free_port()?;
        let env = engine_env(&db_url, port, &args, &credentials);
        engines.push(ServiceProcess::new(
            &format!("engine{n}"),
            &engine_bin,
            env,
            port,
            &run_dir,
        ));
    }
    for engine in &mut engines {
        engine.start(&http).await?;
    }
    let urls: Arc<Vec<String>> = Arc::new(engines.iter().map(ServiceProcess::base_url).collect());
    // A TaskPilot that mirrors every task from the feed, killed like the engines; at the end
    // its mirror must match the engines' tasks exactly.
    let web_db_name = format!("{db_name}_web");
    let web_db_url = server.with_database(&web_db_name);
    let mut mirror = mirror_process(&web_db_url, &urls[0], &credentials, &run_dir)?;
    mirror.start(&http).await?;
    wait_for_first_position(&web_db_url).await?;

    // Submissions are spread over most of the chaos period, so kills meet a busy cluster.
    let pace = Pace {
        start: Instant::now(),
        every: Duration::from_secs(args.chaos_s).mul_f64(0.8)
            / u32::try_from(args.tasks.max(1)).unwrap_or(u32::MAX),
    };
    let next = Arc::new(AtomicUsize::new(0));
    let submitters: Vec<_> = (0..args.clients)
        .map(|_| {
            tokio::spawn(submit(
                http.clone(),
                Arc::clone(&urls),
                Arc::clone(&next),
                args.tasks,
                pace,
            ))
        })
        .collect();

    // Kill one engine at a time, restart it, and once restart Postgres midway.
    let mut kills: Vec<(u32, DateTime<Utc>)> = Vec::new();
    let mut postgres_restarts = 0;
    let chaos_until = started + Duration::from_secs(args.chaos_s);
    while Instant::now() < chaos_until || submitters.iter().any(|s| !s.is_finished()) {
        tokio::time::sleep(Duration::from_millis(args.kill_every_ms)).await;
        if args.restart_postgres && postgres_restarts == 0 && kills.len() >= 2 {
            restart_postgres()?;
            postgres_restarts += 1;
            continue;
        }
        // Every fourth kill is TaskPilot's, mid-stream.
        if kills.len() % 4 == 3 {
            if let Some(pid) = mirror.pid() {
                mirror.kill();
                kills.push((pid, Utc::now()));
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
            start_with_retries(&mut mirror, &http).await?;
            continue;
        }
        let victim = rand::rng().random_range(0..engines.len());
        if let Some(pid) = engines[victim].pid() {
            engines[victim].kill();
            kills.push((pid, Utc::now()));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        start_with_retries(&mut engines[victim], &http).await?;
    }
    let mut submitted = 0;
    for submitter in submitters {
        submitted += submitter.await??;
    }

    // Let the engines finish everything, then check the tables.
    let deadline = Instant::now() + Duration::from_secs(args.deadline_s);
    let conn_url = db_url.clone();
    let mut conn = PgConnection::establish(&conn_url).context("connect to the chaos database")?;
    loop {
        let open = invariants::count(
            &mut conn,
            "SELECT count(*) AS n FROM tasks WHERE status IN ('PENDING', 'RUNNING')",
        )?;
        if open == 0 {
            break;
        }
        if Instant::now() > deadline {
            eprintln!(
                "{open} tasks still open at the deadline; logs in {}",
                run_dir.display()
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut web = PgConnection::establish(&web_db_url).context("connect to the mirror's database")?;
    let mirror_deadline = Instant::now() + Duration::from_secs(60);
    let (mirror_differing, events_extra) = loop {
        let differences = invariants::mirror_differences(&mut conn, &mut web)?;
        if differences == (0, 0) || Instant::now() > mirror_deadline {
            break differences;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    mirror.terminate(Duration::from_secs(5));
    drop(web);
    for engine in &mut engines {
        engine.terminate(Duration::from_secs(5));
    }
    let (report, attempts) = invariants::check(&mut conn, KEY_PREFIX, args.tasks)?;
    let recoveries = recovery_times(&kills, &attempts);
    let max_recovery_ms = recoveries.iter().max().copied().unwrap_or(0);
    drop(conn);
    database::drop_database(&server, &db_name)?;
    database::drop_database(&server, &web_db_name)?;

    println!(
        "chaos: tasks={} submitted={submitted} engines={} kills={} postgres_restarts={postgres_restarts} recoveries={} max_recovery_ms={max_recovery_ms} lost={} duplicated={} stuck={} violations={} mirror_differing={mirror_differing} mirror_events_extra={events_extra} elapsed_s={:.1}",
        report.tasks,
        args.engines,
        kills.len(),
        recoveries.len(),
        report.lost,
        report.duplicated,
        report.stuck,
        report.violations.len(),
        started.elapsed().as_secs_f64()
    );
    for violation in report.violations.iter().take(20) {
        println!("  violation: {violation}");
    }
    if mirror_differing > 0 || events_extra != 0 {
        bail!(
            "TaskPilot's mirror differs from the engines: {mirror_differing} tasks, {events_extra} events \
             applied beyond those written; logs in {}",
            run_dir.display()
        );
    }
    let bound_ms = args.lease_ms + args.rescue_interval_ms + 1_000;
    if report.lost + report.duplicated + report.stuck + report.violations.len() > 0 || submitted != args.tasks
    {
        bail!("invariants violated; engine logs in {}", run_dir.display());
    }
    if max_recovery_ms > bound_ms {
        bail!("a recovery took {max_recovery_ms} ms, over the bound of {bound_ms} ms (lease + rescue interval + 1 s claim slack)");
    }
    let _ = std::fs::remove_dir_all(&run_dir);
    Ok(())
}

/// The TaskPilot process that follows the feed of the engine at `engine_url`.
/// Waits until the mirror has taken its first position in the feed. Until then it has none,
/// and its first reconcile starts it at the feed's end: events written before that are not
/// applied (the reconcile reads their tasks instead), which the event count at the end would
/// take for events lost. Later restarts resume from the stored position.
async fn wait_for_first_position(web_db_url: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let positioned = PgConnection::establish(web_db_url)
            .ok()
            .and_then(|mut web| invariants::count(&mut web, "SELECT count(*) AS n FROM feed_positions").ok());
        if positioned.is_some_and(|n| n > 0) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the mirror took no position in the feed within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn mirror_process(
    web_db_url: &str,
    engine_url: &str,
    credentials: &Credentials,
    run_dir: &std::path::Path,
) -> anyhow::Result<ServiceProcess> {
    let port = free_port()?;
    let mut env: Vec<(&str, String)> = vec![
        ("TASKPILOT_DATABASE_URL", web_db_url.to_owned()),
        ("TASKPILOT_HTTP_ADDR", format!("127.0.0.1:{port}")),
        ("TASKPILOT_SCHEDULER_URL", engine_url.to_owned()),
        ("TASKPILOT_AUTH", "disabled".into()),
        ("RUST_LOG", "warn".into()),
    ];
    env.extend(credentials.mirror_env());
    Ok(ServiceProcess::new(
        "taskpilot",
        &sibling_binary("taskpilot-api")?,
        env_vars(&env),
        port,
        run_dir,
    ))
}

fn engine_env(db_url: &str, port: u16, args: &ChaosArgs, credentials: &Credentials) -> Vec<(String, String)> {
    let mut env: Vec<(&str, String)> = vec![
        ("DTP_DATABASE_URL", db_url.to_owned()),
        ("DTP_HTTP_ADDR", format!("127.0.0.1:{port}")),
        ("DTP_LEASE_MS", args.lease_ms.to_string()),
        ("DTP_RESCUE_INTERVAL_MS", args.rescue_interval_ms.to_string()),
        ("DTP_RETRY_BACKOFF_BASE_MS", "50".into()),
        ("DTP_RETRY_BACKOFF_MAX_MS", "1000".into()),
        ("DTP_POLL_INTERVAL_MS", "100".into()),
        ("DTP_WORKER_CONCURRENCY", "16".into()),
        ("DTP_SHUTDOWN_GRACE_MS", "1000".into()),
        ("DTP_HTTP_WORKERS", "1".into()),
        ("RUST_LOG", "warn".into()),
    ];
    env.extend(credentials.engine_env());
    env_vars(&env)
}

/// The body of task `i`: 60 % demo, 25 % demo-fail (1–2 failures), 15 % demo-slow
/// (200–1000 ms, so that kills find attempts running).
fn task_body(i: usize) -> serde_json::Value {
    let key = format!("{KEY_PREFIX}{i}");
    let (task_type, payload) = match i % 20 {
        0..=11 => ("demo", serde_json::json!({"n": i})),
        12..=16 => ("demo-fail", serde_json::json!({"failTimes": 1 + i % 2})),
        _ => ("demo-slow", serde_json::json!({"sleepMs": 200 + (i % 5) * 200})),
    };
    // Ten attempts: enough for planned failures plus attempts lost to kills.
    serde_json::json!({"type": task_type, "payload": payload, "maxAttempts": 10, "idempotencyKey": key})
}

/// When task `i` is due for submission: `start + i * every`.
#[derive(Clone, Copy)]
struct Pace {
    start: Instant,
    every: Duration,
}

/// Submits tasks until `total` are taken; retries through outages with the same key.
async fn submit(
    http: reqwest::Client,
    urls: Arc<Vec<String>>,
    next: Arc<AtomicUsize>,
    total: usize,
    pace: Pace,
) -> anyhow::Result<usize> {
    let mut accepted = 0;
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= total {
            return Ok(accepted);
        }
        let due = pace.start + pace.every * u32::try_from(i).unwrap_or(u32::MAX);
        tokio::time::sleep_until(due.into()).await;
        let body = task_body(i);
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let url = &urls[rand::rng().random_range(0..urls.len())];
            match http.post(format!("{url}/tasks")).json(&body).send().await {
                Ok(r) if r.status().is_success() => {
                    accepted += 1;
                    break;
                }
                // 503: a deliberate outage (Postgres restarting); connection errors: a killed engine.
                Ok(r) if r.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE => {}
                Ok(r) => bail!(
                    "task {i}: unexpected {} {}",
                    r.status(),
                    r.text().await.unwrap_or_default()
                ),
                Err(_) => {}
            }
            if Instant::now() > deadline {
                bail!("task {i} could not be submitted within 120 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn start_with_retries(engine: &mut ServiceProcess, http: &reqwest::Client) -> anyhow::Result<()> {
    let mut last = None;
    for _ in 0..20 {
        match engine.start(http).await {
            Ok(()) => return Ok(()),
            Err(e) => {
                engine.kill();
                last = Some(e);
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("engine did not start")))
}

fn restart_postgres() -> anyhow::Result<()> {
    let version = std::fs::read_dir("/etc/postgresql")?
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .max()
        .context("no cluster under /etc/postgresql")?;
    let status = std::process::Command::new("pg_ctlcluster")
        .args([
            "--skip-systemctl-redirect",
            &version,
            "main",
            "restart",
            "-m",
            "fast",
        ])
        .status()
        .context("run pg_ctlcluster")?;
    if !status.success() {
        bail!("pg_ctlcluster restart failed: {status}");
    }
    Ok(())
}

/// Per lost attempt of a killed process: from the kill to the task's next attempt.
fn recovery_times(kills: &[(u32, DateTime<Utc>)], attempts: &[invariants::AttemptFacts]) -> Vec<u64> {
    let mut times = Vec::new();
    for (i, attempt) in attempts.iter().enumerate() {
        if attempt.outcome.as_deref() != Some("LOST") {
            continue;
        }
        let killed_at = kills
            .iter()
            .filter(|(pid, at)| attempt.worker_id.contains(&format!("-{pid}-")) && *at >= attempt.started_at)
            .map(|(_, at)| *at)
            .min();
        let next = attempts.get(i + 1).filter(|n| n.task_id == attempt.task_id);
        if let (Some(killed_at), Some(next)) = (killed_at, next) {
            times.push(u64::try_from((next.started_at - killed_at).num_milliseconds()).unwrap_or(0));
        }
    }
    times
}
