//! The engine's pure core: the task state machine, the retry policy and the validation
//! of new tasks, alone or in batches. No I/O, no clock of its own: callers pass `now` and
//! randomness in.

pub mod new_task;
pub mod retry_policy;
pub mod state_machine;
pub mod task_batch;

pub use new_task::{NewTask, TaskValidationError};
pub use retry_policy::RetryPolicy;
pub use state_machine::{transition, AttemptOutcome, IllegalTransition, TaskEvent, TaskState};
pub use task_batch::{BatchError, BatchValidationError, KeyReusedInBatch, NewTaskBatch, MAX_BATCH_TASKS};
