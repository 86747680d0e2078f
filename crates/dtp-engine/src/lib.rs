//! DTP, the Distributed Task Platform's execution engine: it owns the task state machine,
//! retries, leases and outcomes, serves the `/tasks` API and runs the worker loop.
//! An engine of your own registers typed handlers (`task_types::Task`) on
//! `startup::Application::builder`, or runs them from `main` with `serve_from_env`.
//!
//! What it offers: `startup` (build and run an engine), `config` (its settings),
//! `task_types` (handlers of one's own), `domain` (the state machine and the rules of a
//! submission), `store` (the tables, for plan checks and white-box tests), `worker` (the claim
//! loop and the maintenance services), `testing` (an engine on a throwaway database). The
//! HTTP routes and the use cases behind them (`cancellation`, `leasing`, `change_feed`) are
//! the crate's own.

pub(crate) mod cancellation;
pub(crate) mod change_feed;
pub mod config;
pub mod domain;
pub(crate) mod http;
pub(crate) mod leasing;
pub(crate) mod metrics;
mod serve;
pub(crate) mod service_tokens;
pub mod startup;
pub mod store;
pub mod task_types;
#[cfg(feature = "testing")]
pub mod testing;
pub mod worker;

pub use serve::serve_from_env;
