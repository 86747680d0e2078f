//! Credentials for the services a run starts, so that every run measures them with
//! authentication on, as deployed: a tokens file for the engines (an admin token for the
//! harness, a submitter token for TaskPilot, a worker token for workers), and a TaskPilot
//! admin key made with `taskpilot-api keys create` on TaskPilot's database.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context};
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION};

use crate::processes::sibling_binary;

/// The engines' tokens, their secrets in variables of the engines' environment.
pub struct Credentials {
    tokens_file: PathBuf,
    harness: String,
    taskpilot: String,
    worker: String,
}

/// Requests per second a run's token or key may send: beyond what any run reaches.
const RUN_QUOTA: &str = "10000000";

fn secret() -> String {
    format!("{:032x}{:032x}", rand::random::<u128>(), rand::random::<u128>())
}

impl Credentials {
    /// Fresh secrets and their tokens file in `run_dir`.
    pub fn create(run_dir: &Path) -> anyhow::Result<Self> {
        let tokens_file = run_dir.join("dtp-tokens.toml");
        std::fs::write(
            &tokens_file,
            "[tokens.harness]\nsecret_env = \"DTP_HARNESS_TOKEN\"\nrole = \"admin\"\n\
             [tokens.taskpilot]\nsecret_env = \"DTP_TASKPILOT_TOKEN\"\nrole = \"submitter\"\n\
             [tokens.workers]\nsecret_env = \"DTP_WORKERS_TOKEN\"\nrole = \"worker\"\n",
        )
        .context("write the engines' tokens file")?;
        Ok(Self {
            tokens_file,
            harness: secret(),
            taskpilot: secret(),
            worker: secret(),
        })
    }

    /// What an engine's environment needs for these tokens.
    pub fn engine_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("DTP_API_TOKENS_FILE", self.tokens_file.display().to_string()),
            ("DTP_HARNESS_TOKEN", self.harness.clone()),
            ("DTP_TASKPILOT_TOKEN", self.taskpilot.clone()),
            ("DTP_WORKERS_TOKEN", self.worker.clone()),
            // Runs push one token far past any client's quota on purpose; the quota is still
            // checked on every request, so its cost is in what they measure.
            ("DTP_RATE_LIMIT_PER_SEC", RUN_QUOTA.to_owned()),
        ]
    }

    /// What a TaskPilot that mirrors every task of the run needs: the harness's admin token,
    /// whose change feed shows every task whoever submitted it.
    pub fn mirror_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("TASKPILOT_SCHEDULER_TOKEN", self.harness.clone()),
            ("TASKPILOT_RATE_LIMIT_PER_SEC", RUN_QUOTA.to_owned()),
        ]
    }

    /// What TaskPilot's environment needs to call the engines.
    pub fn taskpilot_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("TASKPILOT_SCHEDULER_TOKEN", self.taskpilot.clone()),
            ("TASKPILOT_RATE_LIMIT_PER_SEC", RUN_QUOTA.to_owned()),
        ]
    }

    /// The worker token, for worker processes (`DTP_TOKEN`).
    pub fn worker_token(&self) -> &str {
        &self.worker
    }

    /// A client of the engines that presents the harness's admin token.
    pub fn engine_client(&self, timeout: Duration, idle_per_host: usize) -> anyhow::Result<reqwest::Client> {
        client_with(&self.harness, timeout, idle_per_host)
    }
}

/// A client that presents `bearer` with every request.
pub fn client_with(bearer: &str, timeout: Duration, idle_per_host: usize) -> anyhow::Result<reqwest::Client> {
    let mut value = HeaderValue::from_str(&format!("Bearer {bearer}"))?;
    value.set_sensitive(true);
    let headers = HeaderMap::from_iter([(AUTHORIZATION, value)]);
    Ok(reqwest::Client::builder()
        .timeout(timeout)
        .pool_max_idle_per_host(idle_per_host)
        .default_headers(headers)
        .build()?)
}

/// Makes a TaskPilot key of `tenant` with every scope on the database at `web_db_url`
/// (created and migrated if need be), with the sibling `taskpilot-api` binary.
pub fn taskpilot_admin_key(web_db_url: &str, tenant: &str) -> anyhow::Result<String> {
    let output = Command::new(sibling_binary("taskpilot-api")?)
        .args([
            "keys", "create", "--tenant", tenant, "--scopes", "admin", "--name", "harness",
        ])
        .env("TASKPILOT_DATABASE_URL", web_db_url)
        .output()
        .context("run taskpilot-api keys create")?;
    if !output.status.success() {
        bail!(
            "taskpilot-api keys create failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8(output.stdout)?.trim().to_owned())
}
