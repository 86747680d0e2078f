//! `dtp-engine`: reads `DTP_*` settings, brings the database up, then serves and works
//! until SIGTERM or Ctrl-C.

use std::process::ExitCode;

use anyhow::Context;
use dtp_engine::config::EngineConfig;
use dtp_engine::startup::Application;
use service_runtime::env_config::ProcessEnv;
use service_runtime::telemetry;

#[tokio::main]
async fn main() -> ExitCode {
    telemetry::init("info");
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dtp-engine: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let config = EngineConfig::from_source(&ProcessEnv).context("configuration")?;
    let app = Application::build(config).await.context("start-up failed")?;
    let shutdown = app.shutdown_token();
    tokio::spawn(async move {
        service_runtime::telemetry::shutdown_signal().await;
        shutdown.cancel();
    });
    app.run_until_stopped().await.context("server failed")
}
