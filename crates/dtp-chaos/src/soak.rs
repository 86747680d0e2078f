//! The soak: many concurrent clients use TaskPilot as users would (create → bind → poll
//! the execution view → sometimes cancel) for a while. Afterwards: no 5xx, no web task
//! lost or left unbound, every execution finished, and memory of both services flat.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use diesel::prelude::*;
use rand::Rng;
use serde_json::{json, Value};
use service_postgres::database::{self, DatabaseUrl};

use dtp_chaos::credentials::{client_with, taskpilot_admin_key, Credentials};
use dtp_chaos::invariants::count;
use dtp_chaos::processes::{env_vars, free_port, sibling_binary, ServiceProcess};

#[derive(Args, Clone)]
pub struct SoakArgs {
    /// Concurrent clients.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// How long the clients keep going.
    #[arg(long, default_value_t = 60)]
    duration_s: u64,
    /// Allowed RSS growth of each service between warm-up and the end, in MiB.
    #[arg(long, default_value_t = 32)]
    max_rss_growth_mib: u64,
}

#[derive(Default)]
struct Tally {
    requests: AtomicU64,
    server_errors: AtomicU64,
    unexpected: AtomicU64,
    created: AtomicU64,
    canceled: AtomicU64,
    finished: AtomicU64,
}

pub async fn run(server_url: &str, args: SoakArgs) -> anyhow::Result<()> {
    let server = DatabaseUrl::parse(server_url)?;
    let suffix = format!("{}_{:08x}", std::process::id(), rand::random::<u32>());
    let (dtp_db, web_db) = (format!("soak_dtp_{suffix}"), format!("soak_web_{suffix}"));
    let run_dir = std::env::temp_dir().join(format!("dtp-soak-{suffix}"));
    std::fs::create_dir_all(&run_dir)?;
    let credentials = Credentials::create(&run_dir)?;
    let engine_http = credentials.engine_client(Duration::from_secs(10), usize::MAX)?;
    let key = taskpilot_admin_key(&server.with_database(&web_db), "soak")?;
    let http = client_with(&key, Duration::from_secs(10), usize::MAX)?;

    let dtp_port = free_port()?;
    let mut engine_env = vec![
        ("DTP_DATABASE_URL", server.with_database(&dtp_db)),
        ("DTP_HTTP_ADDR", format!("127.0.0.1:{dtp_port}")),
        ("DTP_RETRY_BACKOFF_BASE_MS", "100".into()),
        ("DTP_WORKER_CONCURRENCY", "32".into()),
        ("RUST_LOG", "warn".into()),
    ];
    engine_env.extend(credentials.engine_env());
    let mut engine = ServiceProcess::new(
        "engine",
        &sibling_binary("dtp-engine")?,
        env_vars(&engine_env),
        dtp_port,
        &run_dir,
    );
    engine.start(&engine_http).await?;
    let web_port = free_port()?;
    let mut web_env = vec![
        ("TASKPILOT_DATABASE_URL", server.with_database(&web_db)),
        ("TASKPILOT_HTTP_ADDR", format!("127.0.0.1:{web_port}")),
        ("TASKPILOT_SCHEDULER_URL", engine.base_url()),
        ("RUST_LOG", "warn".into()),
    ];
    web_env.extend(credentials.taskpilot_env());
    let mut taskpilot = ServiceProcess::new(
        "taskpilot",
        &sibling_binary("taskpilot-api")?,
        env_vars(&web_env),
        web_port,
        &run_dir,
    );
    taskpilot.start(&http).await?;

    let tally = Arc::new(Tally::default());
    let end = Instant::now() + Duration::from_secs(args.duration_s);
    let clients: Vec<_> = (0..args.clients)
        .map(|_| {
            tokio::spawn(client(
                http.clone(),
                taskpilot.base_url(),
                Arc::clone(&tally),
                end,
            ))
        })
        .collect();
    // Memory after warm-up (a tenth of the run), then at the end.
    tokio::time::sleep(Duration::from_secs(args.duration_s / 10 + 1)).await;
    let warm = (engine.rss_kib().unwrap_or(0), taskpilot.rss_kib().unwrap_or(0));
    for c in clients {
        c.await??;
    }
    let last = (engine.rss_kib().unwrap_or(0), taskpilot.rss_kib().unwrap_or(0));

    // Let the last executions finish, then reconcile both databases.
    let mut dtp =
        PgConnection::establish(&server.with_database(&dtp_db)).context("connect to the soak dtp db")?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while count(
        &mut dtp,
        "SELECT count(*) AS n FROM tasks WHERE status IN ('PENDING', 'RUNNING')",
    )? > 0
    {
        if Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut web = PgConnection::establish(&server.with_database(&web_db))?;
    let web_tasks = count(&mut web, "SELECT count(*) AS n FROM web_tasks")?;
    let unbound = count(
        &mut web,
        "SELECT count(*) AS n FROM web_tasks WHERE scheduler_task_id IS NULL",
    )?;
    let dtp_tasks = count(&mut dtp, "SELECT count(*) AS n FROM tasks")?;
    let open = count(
        &mut dtp,
        "SELECT count(*) AS n FROM tasks WHERE status IN ('PENDING', 'RUNNING')",
    )?;
    engine.terminate(Duration::from_secs(5));
    taskpilot.terminate(Duration::from_secs(5));
    drop((dtp, web));
    database::drop_database(&server, &dtp_db)?;
    database::drop_database(&server, &web_db)?;

    let created = i64::try_from(tally.created.load(Ordering::Relaxed)).unwrap_or(i64::MAX);
    let lost = created - web_tasks;
    let server_errors = tally.server_errors.load(Ordering::Relaxed);
    let unexpected = tally.unexpected.load(Ordering::Relaxed);
    println!(
        "soak: clients={} duration_s={} requests={} created={created} finished={} canceled={} 5xx={server_errors} unexpected={unexpected} lost={lost} unbound={unbound} dtp_tasks={dtp_tasks} open={open} engine_rss_mib={:.1}->{:.1} taskpilot_rss_mib={:.1}->{:.1}",
        args.clients,
        args.duration_s,
        tally.requests.load(Ordering::Relaxed),
        tally.finished.load(Ordering::Relaxed),
        tally.canceled.load(Ordering::Relaxed),
        mib(warm.0),
        mib(last.0),
        mib(warm.1),
        mib(last.1),
    );
    let growth_limit = args.max_rss_growth_mib * 1024;
    if server_errors > 0 || unexpected > 0 || lost != 0 || unbound > 0 || open > 0 || dtp_tasks != web_tasks {
        bail!("soak found errors; logs in {}", run_dir.display());
    }
    if last.0.saturating_sub(warm.0) > growth_limit || last.1.saturating_sub(warm.1) > growth_limit {
        bail!("memory grew by more than {} MiB", args.max_rss_growth_mib);
    }
    let _ = std::fs::remove_dir_all(&run_dir);
    Ok(())
}

/// One user: create → bind → poll until finished, canceling one task in five on the way.
async fn client(http: reqwest::Client, base: String, tally: Arc<Tally>, end: Instant) -> anyhow::Result<()> {
    while Instant::now() < end {
        let (scheduler_type, payload) = match rand::rng().random_range(0..3) {
            0 => ("demo", json!({})),
            1 => ("demo-slow", json!({"sleepMs": 100})),
            _ => ("demo-fail", json!({"failTimes": 1})),
        };
        let Some(created) = call(
            &tally,
            http.post(format!("{base}/api/tasks"))
                .json(&json!({"type": "soak", "payload": payload})),
            201,
        )
        .await
        else {
            continue;
        };
        tally.created.fetch_add(1, Ordering::Relaxed);
        let id = created["id"].as_i64().context("created task has an id")?;
        let bind = http
            .post(format!("{base}/api/tasks/{id}/scheduler"))
            .json(&json!({"schedulerType": scheduler_type}));
        if call(&tally, bind, 201).await.is_none() {
            continue;
        }
        let cancel = rand::rng().random_bool(0.2);
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            let Some(view) = call(&tally, http.get(format!("{base}/api/tasks/{id}/execution")), 200).await
            else {
                break;
            };
            if matches!(view["status"].as_str(), Some("SUCCEEDED" | "FAILED" | "CANCELED")) {
                tally.finished.fetch_add(1, Ordering::Relaxed);
                break;
            }
            if cancel {
                let status = send(
                    &tally,
                    http.put(format!("{base}/api/tasks/{id}/execution/cancel")),
                )
                .await;
                // 409 is a legitimate answer: the task finished before the cancel arrived.
                if status == Some(204) {
                    tally.canceled.fetch_add(1, Ordering::Relaxed);
                } else if status != Some(409) {
                    tally.unexpected.fetch_add(1, Ordering::Relaxed);
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(())
}

/// Sends a request expecting `expected`; counts anything else.
async fn call(tally: &Tally, request: reqwest::RequestBuilder, expected: u16) -> Option<Value> {
    tally.requests.fetch_add(1, Ordering::Relaxed);
    match request.send().await {
        Ok(r) if r.status().as_u16() == expected => r.json().await.ok(),
        Ok(r) => {
            if r.status().is_server_error() {
                tally.server_errors.fetch_add(1, Ordering::Relaxed);
            } else {
                tally.unexpected.fetch_add(1, Ordering::Relaxed);
            }
            eprintln!(
                "unexpected {}: {}",
                r.status(),
                r.text().await.unwrap_or_default()
            );
            None
        }
        Err(e) => {
            tally.unexpected.fetch_add(1, Ordering::Relaxed);
            eprintln!("request failed: {e}");
            None
        }
    }
}

async fn send(tally: &Tally, request: reqwest::RequestBuilder) -> Option<u16> {
    tally.requests.fetch_add(1, Ordering::Relaxed);
    match request.send().await {
        Ok(r) => {
            if r.status().is_server_error() {
                tally.server_errors.fetch_add(1, Ordering::Relaxed);
            }
            Some(r.status().as_u16())
        }
        Err(_) => {
            tally.unexpected.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}
