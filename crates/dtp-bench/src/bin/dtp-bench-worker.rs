//! `dtp-bench-worker`: the worker process of the `external-workers` benchmark. It runs tasks
//! of the external type `bench-external` with a no-op handler through `dtp-client`'s runtime,
//! and logs each handler's start (JSON, microseconds) so that pickup can be timed.
//! Settings: `DTP_URL`, `DTP_TOKEN` (a worker token), `WORKER_CONCURRENCY` (default 200),
//! `RUST_LOG`, `LOG_FORMAT`.

use std::time::Duration;

use dtp_client::worker::{ExternalTask, Job, JobError, WorkerRuntime};
use dtp_client::DtpClient;
use tokio_util::sync::CancellationToken;

/// The external type this worker leases.
const BENCH_TYPE: &str = "bench-external";
const DEFAULT_CONCURRENCY: usize = 200;
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

struct Noop;

impl ExternalTask for Noop {
    const TYPE: &'static str = BENCH_TYPE;
    type Payload = serde_json::Value;

    async fn run(&self, job: Job, _: serde_json::Value) -> Result<Option<serde_json::Value>, JobError> {
        tracing::debug!(task.id = job.task_id, "handler started");
        Ok(None)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    service_process::telemetry::init("info");
    let url = std::env::var("DTP_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    let concurrency = match std::env::var("WORKER_CONCURRENCY") {
        Ok(n) => n.parse()?,
        Err(_) => DEFAULT_CONCURRENCY,
    };
    let mut client = DtpClient::new(&url, CALL_TIMEOUT)?;
    if let Ok(token) = std::env::var("DTP_TOKEN") {
        client = client.with_bearer(&token);
    }
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        service_process::telemetry::shutdown_signal().await;
        stop.cancel();
    });
    WorkerRuntime::new(client, format!("bench-worker-{}", std::process::id()))
        .register(Noop)
        .concurrency(concurrency)
        .run(shutdown)
        .await;
    Ok(())
}
