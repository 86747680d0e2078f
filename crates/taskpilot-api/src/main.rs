//! `taskpilot-api`: reads `TASKPILOT_*` settings, brings its database up, then serves
//! until SIGTERM or Ctrl-C; `taskpilot-api keys ...` manages API keys on the same database;
//! `taskpilot-api healthcheck` asks a running one on this machine whether it is up.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use service_process::env_config::ProcessEnv;
use service_process::{error_line, healthcheck, telemetry};
use taskpilot_api::config::TaskPilotConfig;
use taskpilot_api::key_commands::{self, KeyCommand};
use taskpilot_api::startup::Application;

// jemalloc's background threads hand freed memory back to the system within seconds, where
// the system allocator keeps what a burst of large bodies took (bench/RESULTS.md, large-bodies).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(about = "TaskPilot, the web control plane over DTP")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Manage API keys (on TASKPILOT_DATABASE_URL).
    Keys {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// GET /healthz on TASKPILOT_HTTP_ADDR's port: exit code 0 on 200, else 1 (for container health checks).
    Healthcheck,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        None => {
            telemetry::init("info");
            serve().await
        }
        Some(Command::Keys { command }) => keys(command).await,
        Some(Command::Healthcheck) => {
            let http_addr = TaskPilotConfig::from_source(&ProcessEnv).map(|config| config.http_addr);
            return healthcheck::check("taskpilot-api", http_addr).await;
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("taskpilot-api: {}", error_line::one_line(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

async fn serve() -> anyhow::Result<()> {
    let config = TaskPilotConfig::from_source(&ProcessEnv).context("configuration")?;
    let app = Application::build(config).await.context("start-up failed")?;
    let shutdown = app.shutdown_token();
    tokio::spawn(async move {
        telemetry::shutdown_signal().await;
        shutdown.cancel();
    });
    app.run_until_stopped().await.context("server failed")
}

async fn keys(command: KeyCommand) -> anyhow::Result<()> {
    let config = TaskPilotConfig::from_source(&ProcessEnv).context("configuration")?;
    let printed = key_commands::run(&config.database_url, command).await?;
    print!("{printed}");
    Ok(())
}
