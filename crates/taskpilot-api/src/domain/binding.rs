//! Deciding a bind request. A web task is bound at most once; a repeat with the same
//! scheduler type is answered with the existing binding, another type is a conflict.

/// The binding a web task currently has, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub scheduler_task_id: i64,
    pub scheduler_type: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindDecision {
    /// Not bound yet: create (or find, after a crash) the scheduler task.
    CreateSchedulerTask,
    /// Already bound as requested: answer with the binding, nothing to do.
    AlreadyBound(Binding),
    /// Bound with another type: refuse.
    Conflict(Binding),
}

/// What to do with a request to bind as `requested_type`, given the current binding.
pub fn decide_bind(current: Option<Binding>, requested_type: &str) -> BindDecision {
    match current {
        None => BindDecision::CreateSchedulerTask,
        Some(binding) if binding.scheduler_type == requested_type => BindDecision::AlreadyBound(binding),
        Some(binding) => BindDecision::Conflict(binding),
    }
}

/// The scheduler's idempotency key for a web task's one scheduler task. Derived from
/// the web task id alone, so that every retry of a bind, even after a crash between the
/// scheduler's answer and our commit, finds the same scheduler task.
pub fn idempotency_key(web_task_id: i64) -> String {
    format!("{KEY_PREFIX}{web_task_id}")
}

const KEY_PREFIX: &str = "taskpilot-web-task-";

/// The web task a scheduler task was created for, read back from its idempotency key.
pub fn web_task_of_key(key: &str) -> Option<i64> {
    let id: i64 = key.strip_prefix(KEY_PREFIX)?.parse().ok()?;
    (id > 0 && idempotency_key(id) == key).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_names_its_web_task_and_nothing_else_does() {
        assert_eq!(web_task_of_key(&idempotency_key(42)), Some(42));
        for other in [
            "",
            "taskpilot-web-task-",
            "taskpilot-web-task-0",
            "taskpilot-web-task-007",
            "taskpilot-web-task--3",
            "taskpilot-web-task-4x",
            "invoice-42",
            "taskpilot-web-task-+5",
        ] {
            assert_eq!(web_task_of_key(other), None, "{other:?}");
        }
    }

    fn bound(id: i64, kind: &str) -> Option<Binding> {
        Some(Binding {
            scheduler_task_id: id,
            scheduler_type: kind.into(),
        })
    }

    #[test]
    fn unbound_tasks_get_a_scheduler_task() {
        assert_eq!(decide_bind(None, "demo"), BindDecision::CreateSchedulerTask);
    }

    #[test]
    fn same_type_is_idempotent_and_another_type_conflicts() {
        assert_eq!(
            decide_bind(bound(7, "demo"), "demo"),
            BindDecision::AlreadyBound(bound(7, "demo").unwrap())
        );
        assert_eq!(
            decide_bind(bound(7, "demo"), "demo-slow"),
            BindDecision::Conflict(bound(7, "demo").unwrap())
        );
    }

    #[test]
    fn keys_depend_on_the_web_task_only() {
        assert_eq!(idempotency_key(14), "taskpilot-web-task-14");
        assert_ne!(idempotency_key(14), idempotency_key(15));
    }
}
