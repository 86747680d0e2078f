//! TaskPilot's pure core: what a web task is, how a bind request is decided against
//! the current binding, and the execution view's latency maths. No I/O, no clock.

pub mod binding;
pub mod execution_view;
pub mod web_task;

pub use binding::{decide_bind, BindDecision};
pub use execution_view::{execution_view, AttemptView, ExecutionView};
pub use web_task::{NewWebTask, WebTaskStatus, WebTaskValidationError};
