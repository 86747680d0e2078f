//! Validation of a batch submission (`POST /tasks/batch`): every item is checked exactly as
//! a single submission would be, and items that share an idempotency key are folded into
//! one task, so that the store inserts each distinct task once.

use std::collections::HashMap;

use dtp_contract::CreateTaskRequest;

use super::new_task::{NewTask, TaskTypes, TaskValidationError};

/// Most tasks one batch may carry.
pub const MAX_BATCH_TASKS: usize = 1_000;

/// A validated batch: the distinct tasks to insert and which of them answers each item.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTaskBatch {
    /// The distinct tasks, in the order of their first item.
    pub tasks: Vec<NewTask>,
    /// For each submitted item, in request order, the index in `tasks` of its task.
    pub answered_by: Vec<usize>,
}

/// Why a batch is unacceptable as a whole (422).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchValidationError {
    #[error("tasks must hold 1 to {MAX_BATCH_TASKS} items, got {0}")]
    Size(usize),
    #[error("tasks[{index}]: {source}")]
    Item {
        index: usize,
        #[source]
        source: TaskValidationError,
    },
}

/// Two items of one batch name one idempotency key but ask for different tasks (409, as
/// a key reused across requests is).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "tasks[{index}] reuses the idempotency key of tasks[{first}] with another type, payload, maxAttempts, timeoutMs or runAt"
)]
pub struct KeyReusedInBatch {
    pub index: usize,
    pub first: usize,
}

/// Why a batch cannot be accepted before the store is asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error(transparent)]
    Invalid(#[from] BatchValidationError),
    #[error(transparent)]
    KeyReused(#[from] KeyReusedInBatch),
}

impl NewTaskBatch {
    /// Validates every item (the first bad one is reported with its index), then folds
    /// items sharing an idempotency key: a repeat that matches the first item is answered
    /// by the same task; one that does not match refuses the batch.
    pub fn validate(items: Vec<CreateTaskRequest>, types: &dyn TaskTypes) -> Result<Self, BatchError> {
        if items.is_empty() || items.len() > MAX_BATCH_TASKS {
            return Err(BatchValidationError::Size(items.len()).into());
        }
        let mut tasks = Vec::with_capacity(items.len());
        let mut answered_by = Vec::with_capacity(items.len());
        // Idempotency key → (index of its first item, index in `tasks`).
        let mut by_key: HashMap<String, (usize, usize)> = HashMap::new();
        for (index, item) in items.into_iter().enumerate() {
            let task = NewTask::validate(item, types)
                .map_err(|source| BatchValidationError::Item { index, source })?;
            if let Some(key) = &task.idempotency_key {
                if let Some(&(first, slot)) = by_key.get(key) {
                    let earlier: &NewTask = &tasks[slot];
                    if !task.matches(&earlier.submitted_as()) {
                        return Err(KeyReusedInBatch { index, first }.into());
                    }
                    answered_by.push(slot);
                    continue;
                }
                by_key.insert(key.clone(), (index, tasks.len()));
            }
            answered_by.push(tasks.len());
            tasks.push(task);
        }
        Ok(Self { tasks, answered_by })
    }

    /// The same batch, its idempotency keys being `scope`'s.
    pub fn scoped_to(mut self, scope: &str) -> Self {
        for task in &mut self.tasks {
            task.idempotency_scope = scope.to_owned();
        }
        self
    }

    /// The first submitted item that `tasks[slot]` answers, for messages that name an item.
    pub fn first_item_of(&self, slot: usize) -> usize {
        self.answered_by.iter().position(|s| *s == slot).unwrap_or(slot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::new_task::tests::Demo;
    use serde_json::json;

    fn item(key: Option<&str>, payload: serde_json::Value) -> CreateTaskRequest {
        CreateTaskRequest {
            task_type: "demo".into(),
            payload,
            max_attempts: None,
            idempotency_key: key.map(str::to_owned),
            run_at: None,
            timeout_ms: None,
        }
    }

    #[test]
    fn refuses_empty_and_oversized_batches() {
        assert_eq!(
            NewTaskBatch::validate(vec![], &Demo),
            Err(BatchError::Invalid(BatchValidationError::Size(0)))
        );
        let too_many = vec![item(None, json!(1)); MAX_BATCH_TASKS + 1];
        let err = NewTaskBatch::validate(too_many, &Demo).unwrap_err();
        assert_eq!(err.to_string(), "tasks must hold 1 to 1000 items, got 1001");
        assert!(NewTaskBatch::validate(vec![item(None, json!(1)); MAX_BATCH_TASKS], &Demo).is_ok());
    }

    #[test]
    fn names_the_first_bad_item() {
        let mut bad = item(None, json!(3));
        bad.max_attempts = Some(0);
        let mut unknown = item(None, json!(4));
        unknown.task_type = "nope".into();
        let items = vec![
            item(None, json!(0)),
            item(None, json!(1)),
            item(None, json!(2)),
            bad,
            unknown,
        ];
        let err = NewTaskBatch::validate(items, &Demo).unwrap_err();
        assert_eq!(
            err.to_string(),
            "tasks[3]: maxAttempts must be between 1 and 100, got 0"
        );
    }

    #[test]
    fn keeps_request_order_and_folds_matching_repeats_of_a_key() {
        let items = vec![
            item(Some("a"), json!(1)),
            item(None, json!(2)),
            item(Some("b"), json!(3)),
            item(Some("a"), json!(1)),
            item(None, json!(2)),
        ];
        let batch = NewTaskBatch::validate(items, &Demo).unwrap();
        assert_eq!(batch.tasks.len(), 4);
        assert_eq!(batch.answered_by, vec![0, 1, 2, 0, 3]);
        let payloads: Vec<_> = batch.tasks.iter().map(|t| t.payload.clone()).collect();
        assert_eq!(payloads, vec![json!(1), json!(2), json!(3), json!(2)]);
        assert_eq!(batch.first_item_of(3), 4);
    }

    #[test]
    fn a_key_repeated_with_another_request_refuses_the_batch() {
        let items = vec![
            item(Some("a"), json!(1)),
            item(Some("b"), json!(1)),
            item(Some("a"), json!(2)),
        ];
        assert_eq!(
            NewTaskBatch::validate(items, &Demo),
            Err(BatchError::KeyReused(KeyReusedInBatch { index: 2, first: 0 }))
        );
    }
}
