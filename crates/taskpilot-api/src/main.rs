//! `taskpilot-api`: reads `TASKPILOT_*` settings, brings its database up, then serves
//! until SIGTERM or Ctrl-C.

use std::process::ExitCode;

use anyhow::Context;
use service_runtime::env_config::ProcessEnv;
use service_runtime::telemetry;
use taskpilot_api::config::TaskPilotConfig;
use taskpilot_api::startup::Application;

#[tokio::main]
async fn main() -> ExitCode {
    telemetry::init("info");
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("taskpilot-api: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let config = TaskPilotConfig::from_source(&ProcessEnv).context("configuration")?;
    let app = Application::build(config).await.context("start-up failed")?;
    let shutdown = app.shutdown_token();
    tokio::spawn(async move {
        telemetry::shutdown_signal().await;
        shutdown.cancel();
    });
    app.run_until_stopped().await.context("server failed")
}
