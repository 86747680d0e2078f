//! TaskPilot, the web control plane: owns the user-facing task record and its link to
//! a DTP task, binds tasks to the scheduler exactly once, and serves their execution view.

pub mod api_keys;
pub mod config;
pub mod domain;
pub mod event_streams;
pub mod execution_follower;
pub mod execution_link;
pub mod http;
pub mod key_commands;
pub mod metrics;
pub mod scheduler_client;
pub mod startup;
pub mod store;
