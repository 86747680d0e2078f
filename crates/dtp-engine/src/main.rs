//! `dtp-engine`: the stock engine, with the demo types and the operator's types file.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    dtp_engine::serve_from_env("dtp-engine", |engine| engine).await
}
