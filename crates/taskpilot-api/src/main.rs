//! `taskpilot-api`: reads `TASKPILOT_*` settings, brings its database up, then serves
//! until SIGTERM or Ctrl-C; `taskpilot-api keys ...` manages API keys on the same database.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use service_runtime::env_config::ProcessEnv;
use service_runtime::telemetry;
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
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("taskpilot-api: {e:#}");
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
