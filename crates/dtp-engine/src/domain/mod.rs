//! The engine's pure core: the task state machine, the retry policy, task types and their
//! settings, the validation of new tasks (alone or in batches) and of results, and the rules
//! of HTTP delivery (what an answer means, how a request is signed). No I/O, no clock of its
//! own: callers pass `now` and randomness in.

pub mod access;
pub mod feed_position;
pub mod http_delivery;
pub mod lease;
pub mod new_task;
pub mod retry_policy;
pub mod state_machine;
pub mod task_batch;
pub mod task_result;
pub mod task_type;
pub mod webhook_signature;

pub use new_task::{NewTask, SubmissionDefaults, TaskTypes, TaskValidationError};
pub use retry_policy::RetryPolicy;
pub use state_machine::{
    transition, AttemptOutcome, IllegalTransition, TaskEvent, TaskState, CLAIMED, RELEASED,
};
pub use task_batch::{BatchError, BatchValidationError, KeyReusedInBatch, NewTaskBatch, MAX_BATCH_TASKS};
pub use task_type::{EngineTypeDefaults, TaskQueue, TypeOptions, TypeSettings};
