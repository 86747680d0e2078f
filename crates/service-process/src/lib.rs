//! Setting up a service's process: `env_config` reads typed settings from the environment,
//! `telemetry` starts structured logging, `error_line` is the one line a binary prints when it
//! stops on an error, and `healthcheck` is the command a container probe runs.

pub mod env_config;
pub mod error_line;
pub mod healthcheck;
pub mod telemetry;
