//! Real service processes on loopback ports: start, `kill -9`, restart on the same port,
//! wait until they answer, read their memory. Logs go to files in the run's directory.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// One service slot: a binary, its environment and its port, run as at most one process.
pub struct ServiceProcess {
    pub name: String,
    binary: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    pub port: u16,
    log_dir: PathBuf,
    child: Option<Child>,
    starts: u32,
}

impl ServiceProcess {
    pub fn new(name: &str, binary: &Path, env: Vec<(String, String)>, port: u16, log_dir: &Path) -> Self {
        Self {
            name: name.to_owned(),
            binary: binary.to_owned(),
            args: Vec::new(),
            env,
            port,
            log_dir: log_dir.to_owned(),
            child: None,
            starts: 0,
        }
    }

    /// The same slot, started with these command-line arguments.
    #[must_use]
    pub fn with_args(mut self, args: impl IntoIterator<Item = String>) -> Self {
        self.args = args.into_iter().collect();
        self
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Starts the process and waits until `/healthz` answers.
    pub async fn start(&mut self, http: &reqwest::Client) -> anyhow::Result<()> {
        self.spawn()?;
        self.wait_until_healthy(http).await
    }

    /// Starts the process without waiting for it (to start several at the same moment).
    pub fn spawn(&mut self) -> anyhow::Result<()> {
        self.starts += 1;
        let log_path = self.log_path();
        let log =
            std::fs::File::create(&log_path).with_context(|| format!("create {}", log_path.display()))?;
        let child = Command::new(&self.binary)
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("spawn {}", self.binary.display()))?;
        self.child = Some(child);
        Ok(())
    }

    /// The log file of the latest start.
    pub fn log_path(&self) -> PathBuf {
        self.log_dir.join(format!("{}-{}.log", self.name, self.starts))
    }

    /// Waits until the spawned process answers `/healthz`; fails if it exits or stays silent.
    pub async fn wait_until_healthy(&mut self, http: &reqwest::Client) -> anyhow::Result<()> {
        let log_path = self.log_path();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = http.get(format!("{}/healthz", self.base_url())).send().await {
                if r.status().is_success() {
                    return Ok(());
                }
            }
            if let Some(status) = self.exit_status() {
                bail!(
                    "{} exited at start ({status}); see {}",
                    self.name,
                    log_path.display()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not answer within 30 s; see {}",
                    self.name,
                    log_path.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// How the process ended, if it has: a run waiting on it can stop waiting.
    pub fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }

    /// `kill -9`: no shutdown, no release, leases left to expire.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait for a graceful exit (SIGKILL after `grace`).
    pub fn terminate(&mut self, grace: Duration) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let deadline = Instant::now() + grace;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Resident memory in KiB, from /proc.
    pub fn rss_kib(&self) -> Option<u64> {
        self.memory_kib("VmRSS:")
    }

    /// The most resident memory the process has had so far (its high-water mark), in KiB.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        self.memory_kib("VmHWM:")
    }

    fn memory_kib(&self, field: &str) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Environment pairs for `ServiceProcess::new`.
pub fn env_vars(pairs: &[(&str, String)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()
}

/// The directory holding this binary's sibling binaries (`target/<profile>`).
pub fn sibling_binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let path = exe.parent().context("binary has no directory")?.join(name);
    if !path.exists() {
        bail!(
            "{} not found; build it first (cargo build --bins)",
            path.display()
        );
    }
    Ok(path)
}
