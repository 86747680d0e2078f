//! `dtp-chaos`: drives real `dtp-engine` and `taskpilot-api` processes against the local
//! Postgres while injecting faults (`kill -9` of engines, a Postgres restart), then checks
//! the invariants from the tables: nothing lost, nothing duplicated, nothing run twice at
//! once, nothing stuck. `soak` puts the control plane under concurrent client load.

mod chaos;
mod soak;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Fault-injection and soak runs for TaskPilot + DTP")]
struct Cli {
    /// A database on the Postgres server to use; runs create and drop their own databases there.
    #[arg(
        long,
        global = true,
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    server_url: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Several engines on one database, killed and restarted while they drain a task mix.
    Chaos(chaos::ChaosArgs),
    /// Concurrent clients doing create → bind → poll → (sometimes) cancel through TaskPilot.
    Soak(soak::SoakArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Chaos(args) => chaos::run(&cli.server_url, args).await,
        Command::Soak(args) => soak::run(&cli.server_url, args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dtp-chaos: {e:#}");
            ExitCode::FAILURE
        }
    }
}
