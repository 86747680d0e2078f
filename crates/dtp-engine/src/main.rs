//! `dtp-engine`: the stock engine, with the demo types and the operator's types file.

use std::process::ExitCode;

// jemalloc's background threads hand freed memory back to the system within seconds, where
// the system allocator keeps what a burst of large bodies took (bench/RESULTS.md, large-bodies).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> ExitCode {
    dtp_engine::serve_from_env("dtp-engine", |engine| engine).await
}
