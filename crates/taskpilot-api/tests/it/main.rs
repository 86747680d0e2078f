//! End-to-end tests: TaskPilot and a real DTP engine on loopback ports, each on its own
//! throwaway database, driven over HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api_description;
mod attempts;
mod bad_input;
mod bind;
mod dashboard;
mod error_mapping;
mod flow;
mod harness;
mod keys;
mod listing;
mod mirror;
mod own_types;
mod streams;
mod trace_forwarding;

/// How long a test waits for the engine to get somewhere.
const PATIENCE: std::time::Duration = std::time::Duration::from_secs(15);
