//! `dtp-engine`: the stock engine, with the demo types and the operator's types file;
//! `dtp-engine healthcheck` asks a running one on this machine whether it is up.

use std::process::ExitCode;

use dtp_engine::config::EngineConfig;
use service_process::env_config::ProcessEnv;
use service_process::healthcheck;

// jemalloc's background threads hand freed memory back to the system within seconds, where
// the system allocator keeps what a burst of large bodies took (bench/RESULTS.md, large-bodies).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const USAGE: &str = "usage: dtp-engine [healthcheck]  (serves with no command; settings from DTP_*)";

#[tokio::main]
async fn main() -> ExitCode {
    let command = std::env::args().nth(1);
    match command.as_deref() {
        None => dtp_engine::serve_from_env("dtp-engine", |engine| engine).await,
        Some("healthcheck") => {
            let http_addr = EngineConfig::from_source(&ProcessEnv).map(|config| config.http_addr);
            healthcheck::check("dtp-engine", http_addr).await
        }
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!("dtp-engine: unknown command {other:?}; {USAGE}");
            ExitCode::from(2)
        }
    }
}
