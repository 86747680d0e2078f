//! A client of the DTP engine for Rust programs: `DtpClient` speaks the whole HTTP API with
//! the wire types of `dtp-contract`, and `worker` runs typed handlers for external task types,
//! leasing tasks, heartbeating and reporting each outcome, with fencing honoured.

mod client;
pub mod worker;

pub use client::{DtpClient, DtpError, Submitted, UNEXPLAINED_REFUSAL};
