//! `dtp-bench`: measures real `dtp-engine` and `taskpilot-api` processes on fresh databases
//! of the local Postgres (created, then dropped): drain rate, enqueue rate, pickup latency,
//! control-plane round trips, a long history, two engines on one database, engine memory,
//! delivery to an HTTP target, workers leasing external tasks, memory under large bodies,
//! and the change feed: its cost to the drain, pickup during retention, the mirror's lag;
//! and DTP beside graphile-worker on the same Postgres.

mod control_plane;
mod drain;
mod engine_db;
mod enqueue;
mod external_workers;
mod feed;
mod graphile;
mod history;
mod http_target;
mod large_bodies;
mod peers;
mod pickup;
mod plan;
mod report;
mod scratch_db;
mod services;

use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use service_postgres::database::DatabaseUrl;

pub use plan::Plan;
use plan::PlanArgs;
use report::Report;
use services::Bench;

#[derive(Parser)]
#[command(about = "Benchmarks of TaskPilot + DTP against real processes and the local Postgres")]
struct Cli {
    /// A database on the Postgres server to use; runs create and drop their own databases there.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    server_url: String,
    /// Scenarios to run, comma-separated; all when absent.
    #[arg(long, value_enum, value_delimiter = ',')]
    scenario: Vec<Scenario>,
    /// A tiny, fast run of the chosen scenarios, for CI: every figure is taken, none is meaningful.
    #[arg(long)]
    smoke: bool,
    /// `RUST_LOG` of the services under measurement.
    #[arg(long, default_value = "warn")]
    service_log: String,
    #[command(flatten)]
    plan: PlanArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    Drain,
    Enqueue,
    Pickup,
    ControlPlane,
    History,
    TwoEngines,
    HttpTarget,
    ExternalWorkers,
    LargeBodies,
    FeedCost,
    Retention,
    Mirror,
    Peers,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let scenarios = if cli.scenario.is_empty() {
        Scenario::value_variants().to_vec()
    } else {
        cli.scenario.clone()
    };
    let plan = Plan::resolve(&cli.plan, cli.smoke);
    let mut report = Report::new(cli.smoke);
    let outcome = run(&cli, &scenarios, &plan, &mut report).await;
    println!("\n{}", report.table());
    if let Err(e) = outcome {
        eprintln!("dtp-bench: {e:#}");
        return ExitCode::FAILURE;
    }
    let failed = report.failed_checks();
    if !failed.is_empty() {
        for m in failed {
            eprintln!(
                "dtp-bench: check failed: {} {} {} = {}",
                m.scenario, m.config, m.metric, m.value
            );
        }
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

async fn run(cli: &Cli, scenarios: &[Scenario], plan: &Plan, report: &mut Report) -> anyhow::Result<()> {
    let bench = Bench::new(DatabaseUrl::parse(&cli.server_url)?, cli.service_log.clone())?;
    for scenario in scenarios {
        eprintln!("dtp-bench: {scenario:?}");
        match scenario {
            Scenario::Drain => drain::run(&bench, plan, report).await?,
            Scenario::Enqueue => enqueue::run(&bench, plan, report).await?,
            Scenario::Pickup => pickup::run(&bench, plan, report).await?,
            Scenario::ControlPlane => control_plane::run(&bench, plan, report).await?,
            Scenario::History => history::run(&bench, plan, report).await?,
            Scenario::TwoEngines => drain::run_two_engines(&bench, plan, report).await?,
            Scenario::HttpTarget => http_target::run(&bench, plan, report).await?,
            Scenario::ExternalWorkers => external_workers::run(&bench, plan, report).await?,
            Scenario::LargeBodies => large_bodies::run(&bench, plan, report).await?,
            Scenario::FeedCost => feed::run_cost(&bench, plan, report).await?,
            Scenario::Retention => feed::run_retention(&bench, plan, report).await?,
            Scenario::Mirror => feed::run_mirror(&bench, plan, report).await?,
            Scenario::Peers => peers::run(&bench, plan, report).await?,
        }
    }
    // Logs are kept only when something went wrong (an error returns before this).
    let _ = std::fs::remove_dir_all(&bench.run_dir);
    Ok(())
}
