//! The edge of every engine binary, stock or custom: logs, `DTP_*` settings, the engine's
//! types, then serving and working until SIGTERM or Ctrl-C. A start-up failure is one line
//! on stderr and exit code 1.

use std::process::ExitCode;

use anyhow::Context;
use service_process::env_config::ProcessEnv;
use service_process::error_line;
use service_process::telemetry;

use crate::config::EngineConfig;
use crate::startup::{Application, EngineBuilder};

/// Runs an engine named `binary` (for messages); `customize` registers its own task types.
///
/// ```no_run
/// # use dtp_engine::task_types::{Task, TaskContext, TaskError, TaskOutput};
/// # struct Resize;
/// # impl Task for Resize {
/// #     const TYPE: &'static str = "resize";
/// #     type Payload = serde_json::Value;
/// #     async fn run(&self, _: TaskContext, _: serde_json::Value) -> Result<TaskOutput, TaskError> { Ok(None) }
/// # }
/// #[tokio::main]
/// async fn main() -> std::process::ExitCode {
///     dtp_engine::serve_from_env("my-engine", |engine| engine.register(Resize)).await
/// }
/// ```
pub async fn serve_from_env(
    binary: &str,
    customize: impl FnOnce(EngineBuilder) -> EngineBuilder,
) -> ExitCode {
    telemetry::init("info");
    match serve(customize).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{binary}: {}", error_line::one_line(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

async fn serve(customize: impl FnOnce(EngineBuilder) -> EngineBuilder) -> anyhow::Result<()> {
    let config = EngineConfig::from_source(&ProcessEnv).context("configuration")?;
    let app = customize(Application::builder(config))
        .build()
        .await
        .context("start-up failed")?;
    let shutdown = app.shutdown_token();
    tokio::spawn(async move {
        telemetry::shutdown_signal().await;
        shutdown.cancel();
    });
    app.run_until_stopped().await.context("server failed")
}
