//! TaskPilot's pure core: what a web task is, how a bind request is decided against
//! the current binding, the execution view's latency maths, the execution mirrored from the
//! scheduler's change feed, and API keys (their text,
//! scopes, and who a key makes a request act as). No I/O, no clock, no randomness.

pub mod api_key;
pub mod binding;
pub mod execution_record;
pub mod execution_view;
pub mod web_task;

pub use binding::{decide_bind, BindDecision};
pub use execution_record::ExecutionRecord;
pub use execution_view::{execution_view, ExecutionView};
pub use web_task::{NewWebTask, WebTaskStatus, WebTaskValidationError};
