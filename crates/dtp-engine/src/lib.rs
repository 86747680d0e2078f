//! DTP, the Distributed Task Platform's execution engine: it owns the task state machine,
//! retries, leases and outcomes, serves the `/tasks` API and runs the worker loop.

pub mod config;
pub mod domain;
pub mod http;
pub mod metrics;
pub mod startup;
pub mod store;
pub mod submission;
pub mod task_reader;
pub mod task_types;
#[cfg(feature = "testing")]
pub mod testing;
pub mod worker;
