//! The engine's pure core: the task state machine, the retry policy, task types and their
//! settings, the validation of new tasks (alone or in batches) and of results, and the rules
//! of HTTP delivery (what an answer means, how a request is signed). No I/O, no clock of its
//! own: callers pass `now` and randomness in.

pub(crate) mod access;
pub(crate) mod feed_position;
pub(crate) mod http_delivery;
pub(crate) mod lease;
pub mod new_task;
pub(crate) mod retry_policy;
pub(crate) mod state_machine;
pub mod task_batch;
pub(crate) mod task_result;
pub(crate) mod task_type;
pub(crate) mod webhook_signature;

pub use new_task::{NewTask, SubmissionDefaults, TaskTypes, TaskValidationError};
pub use retry_policy::RetryPolicy;
pub use state_machine::{
    transition, AttemptOutcome, IllegalTransition, TaskEvent, TaskState, CLAIMED, RELEASED,
};
pub use task_batch::{BatchError, BatchValidationError, KeyReusedInBatch, NewTaskBatch, MAX_BATCH_TASKS};
pub use task_type::{EngineTypeDefaults, TaskQueue, TypeOptions, TypeSettings};
