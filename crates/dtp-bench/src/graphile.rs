//! graphile-worker, the peer `peers` measures DTP against: the Node harness in `bench/peers`
//! (pinned versions from a committed lock file, its own Node 22) on a fresh database of the
//! same Postgres. Its one-shot commands answer one JSON line; its worker runs until stopped.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use diesel::prelude::*;
use diesel::sql_types::Bool;
use dtp_chaos::processes::ServiceProcess;
use serde_json::Value;
use service_postgres::database::DatabaseUrl;

use crate::drain::per_second;
use crate::scratch_db::ScratchDatabase;
use crate::services::Bench;

/// Where the harness lives unless `DTP_BENCH_PEERS_DIR` says otherwise.
const HARNESS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../bench/peers");
/// How long the worker may take to stop once the queue is empty.
const STOP_GRACE: Duration = Duration::from_secs(10);
const POLL_EVERY: Duration = Duration::from_millis(10);
/// A drain slower than this many jobs per second is taken for a hang.
const SLOWEST_PLAUSIBLE_RATE: u64 = 20;

/// graphile-worker's settings in one drain.
#[derive(Debug, Clone, Copy)]
pub enum WorkerSettings {
    /// Only the concurrency set; everything else graphile-worker's defaults.
    Concurrency(usize),
    /// The harness's high-throughput settings (see `bench/peers/README.md`).
    Tuned,
}

impl WorkerSettings {
    fn args(self) -> Vec<String> {
        match self {
            Self::Concurrency(c) => vec!["--concurrency".into(), c.to_string()],
            Self::Tuned => vec!["--tuned".into()],
        }
    }
}

/// What one graphile-worker drain showed.
pub struct PeerDrain {
    /// Jobs over the time from spawning the worker to the bench seeing no job left.
    pub jobs_per_s: f64,
    /// Highest resident memory of the worker process (VmHWM), KiB.
    pub peak_rss_kib: u64,
}

/// The harness: its Node binary and its script.
pub struct Graphile {
    node: PathBuf,
    script: PathBuf,
}

impl Graphile {
    /// The harness installed by `npm ci` in `bench/peers`; a missing install is one clear error.
    pub fn locate() -> anyhow::Result<Self> {
        let dir =
            std::env::var_os("DTP_BENCH_PEERS_DIR").map_or_else(|| PathBuf::from(HARNESS_DIR), PathBuf::from);
        let node = dir.join("node_modules/.bin/node");
        let script = dir.join("graphile.mjs");
        if !node.exists() || !script.exists() {
            bail!(
                "graphile-worker's harness is not installed in {}: run `npm ci` there",
                dir.display()
            );
        }
        Ok(Self { node, script })
    }

    /// Installs graphile-worker's schema in `db`.
    pub async fn migrate(&self, db: &PeerDatabase) -> anyhow::Result<()> {
        self.command(db, &["migrate"]).await.map(drop)
    }

    /// Adds `jobs` no-op jobs through `addJobs`, `batch` per call, with no worker running;
    /// the jobs per second the calls took.
    pub async fn enqueue(&self, db: &PeerDatabase, jobs: usize, batch: usize) -> anyhow::Result<f64> {
        let answer = self
            .command(
                db,
                &[
                    "enqueue",
                    "--jobs",
                    &jobs.to_string(),
                    "--batch",
                    &batch.to_string(),
                ],
            )
            .await?;
        let seconds = answer["seconds"]
            .as_f64()
            .context("enqueue answered no seconds")?;
        Ok(per_second(i64::try_from(jobs)?, seconds))
    }

    /// Spawns a worker with `settings` on `db` and waits until no job is left in it.
    pub async fn drain(
        &self,
        bench: &Bench,
        db: &mut PeerDatabase,
        settings: WorkerSettings,
        jobs: usize,
    ) -> anyhow::Result<PeerDrain> {
        let mut args = vec![self.script.display().to_string(), "work".into()];
        args.extend(settings.args());
        args.extend(["--database-url".into(), db.url().to_owned()]);
        let mut worker =
            ServiceProcess::new("graphile-worker", &self.node, Vec::new(), 0, &bench.run_dir).with_args(args);
        let patience = Duration::from_secs(60 + u64::try_from(jobs).unwrap_or(0) / SLOWEST_PLAUSIBLE_RATE);
        let started = Instant::now();
        worker.spawn()?;
        while db.any_job_left()? {
            if let Some(status) = worker.exit_status() {
                bail!(
                    "graphile-worker exited before the queue was empty ({status}); see {}",
                    worker.log_path().display()
                );
            }
            if started.elapsed() > patience {
                bail!(
                    "graphile-worker did not drain {jobs} jobs within {patience:?}; see {}",
                    worker.log_path().display()
                );
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
        let wall = started.elapsed();
        let peak_rss_kib = worker.peak_rss_kib().unwrap_or(0);
        worker.terminate(STOP_GRACE);
        Ok(PeerDrain {
            jobs_per_s: per_second(i64::try_from(jobs)?, wall.as_secs_f64()),
            peak_rss_kib,
        })
    }

    /// Jobs added one at a time, `gap_ms` apart, to an idle worker of `concurrency`: each
    /// timed from the client's `addJob` to its handler's start (one process, one clock), ms.
    pub async fn pickup(
        &self,
        db: &PeerDatabase,
        jobs: usize,
        gap_ms: u64,
        concurrency: usize,
    ) -> anyhow::Result<Vec<f64>> {
        let answer = self
            .command(
                db,
                &[
                    "pickup",
                    "--jobs",
                    &jobs.to_string(),
                    "--gap-ms",
                    &gap_ms.to_string(),
                    "--concurrency",
                    &concurrency.to_string(),
                ],
            )
            .await?;
        let latencies = answer["latenciesMs"]
            .as_array()
            .context("pickup answered no latenciesMs")?
            .iter()
            .map(|v| v.as_f64().context("a latency that is not a number"))
            .collect::<anyhow::Result<Vec<f64>>>()?;
        if latencies.len() != jobs {
            bail!("pickup timed {} of {jobs} jobs", latencies.len());
        }
        Ok(latencies)
    }

    /// Runs one harness command on `db` and reads its JSON answer.
    async fn command(&self, db: &PeerDatabase, args: &[&str]) -> anyhow::Result<Value> {
        let output = tokio::process::Command::new(&self.node)
            .arg(&self.script)
            .args(args)
            .args(["--database-url", db.url()])
            .stdin(Stdio::null())
            .output()
            .await
            .with_context(|| format!("run {}", self.node.display()))?;
        if !output.status.success() {
            bail!(
                "graphile harness {args:?} failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        let stdout = String::from_utf8_lossy(&output.stdout);
        let line = stdout
            .lines()
            .last()
            .context("graphile harness printed nothing")?;
        serde_json::from_str(line).with_context(|| format!("graphile harness answered {line:?}"))
    }
}

/// graphile-worker's database for one measurement: created empty, dropped afterwards.
pub struct PeerDatabase {
    db: ScratchDatabase,
}

#[derive(QueryableByName)]
struct Exists {
    #[diesel(sql_type = Bool)]
    found: bool,
}

impl PeerDatabase {
    pub fn create(server: &DatabaseUrl, label: &str) -> anyhow::Result<Self> {
        Ok(Self {
            db: ScratchDatabase::create(server, label)?,
        })
    }

    fn url(&self) -> &str {
        self.db.url()
    }

    /// Whether any job is still in the queue: graphile-worker deletes a job once it succeeded.
    fn any_job_left(&mut self) -> anyhow::Result<bool> {
        let row: Exists =
            diesel::sql_query("SELECT EXISTS (SELECT 1 FROM graphile_worker._private_jobs) AS found")
                .get_result(self.db.conn())?;
        Ok(row.found)
    }

    /// See `ScratchDatabase::checkpoint`.
    pub fn checkpoint(&mut self) -> anyhow::Result<()> {
        self.db.checkpoint()
    }
}
