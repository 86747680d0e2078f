//! What `dtp-chaos` and the benchmarks (`crates/dtp-bench`) share: real service processes on loopback
//! ports (start, kill, restart, memory), their credentials, and the invariants read back from
//! the engine's tables.

pub mod credentials;
pub mod invariants;
pub mod processes;
