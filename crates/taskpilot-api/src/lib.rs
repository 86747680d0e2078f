//! TaskPilot, the web control plane: owns the user-facing task record and its link to
//! a DTP task, binds tasks to the scheduler exactly once, and serves their execution view.
//!
//! What it offers: `startup` (build and run TaskPilot), `config` (its settings),
//! `key_commands` (the `keys` subcommands), and for white-box tests `event_streams` and
//! `store`. The routes (`http`, the dashboard among them), the use cases (`execution_link`),
//! the mirror (`execution_follower`) and the scheduler client are the crate's own.

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
