//! TaskPilot, the web control plane: owns the user-facing task record and its link to
//! a DTP task, binds tasks to the scheduler exactly once, and serves their execution view.

pub(crate) mod api_keys;
pub mod config;
pub(crate) mod domain;
pub mod event_streams;
pub(crate) mod execution_follower;
pub(crate) mod execution_link;
pub(crate) mod http;
pub mod key_commands;
pub(crate) mod metrics;
pub(crate) mod scheduler_client;
pub mod startup;
pub mod store;
