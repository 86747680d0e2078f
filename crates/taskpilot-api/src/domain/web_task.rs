//! The web task: the user-facing record TaskPilot owns. Its status says only where the
//! record stands in the control plane (PENDING until bound, SUBMITTED once bound);
//! execution state belongs to the scheduler and is read through the execution view.

use std::fmt;

pub const TASK_TYPE_MAX_CHARS: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, utoipa::ToSchema)]
#[schema(rename_all = "UPPERCASE")]
pub enum WebTaskStatus {
    /// Created, not yet handed to the scheduler.
    Pending,
    /// Bound to a scheduler task (`schedulerTaskId` is set).
    Submitted,
}

impl WebTaskStatus {
    pub const ALL: [WebTaskStatus; 2] = [WebTaskStatus::Pending, WebTaskStatus::Submitted];

    pub fn as_str(self) -> &'static str {
        match self {
            WebTaskStatus::Pending => "PENDING",
            WebTaskStatus::Submitted => "SUBMITTED",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl fmt::Display for WebTaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebTaskValidationError {
    #[error("type must be 1 to {TASK_TYPE_MAX_CHARS} characters")]
    TypeLength,
    #[error("schedulerType must be 1 to {TASK_TYPE_MAX_CHARS} characters")]
    SchedulerTypeLength,
    #[error("{field} {reason}")]
    Unstorable {
        field: &'static str,
        reason: dtp_contract::UnstorableJson,
    },
}

/// A validated web task, ready to be inserted.
#[derive(Debug, Clone, PartialEq)]
pub struct NewWebTask {
    pub task_type: String,
    pub payload: serde_json::Value,
    /// Whose it is: the tenant of the key that created it.
    pub tenant: String,
}

impl NewWebTask {
    pub fn validate(task_type: String, payload: serde_json::Value) -> Result<Self, WebTaskValidationError> {
        if !valid_type_name(&task_type) {
            return Err(WebTaskValidationError::TypeLength);
        }
        dtp_contract::check_storable(&payload).map_err(|reason| WebTaskValidationError::Unstorable {
            field: "payload",
            reason,
        })?;
        Ok(Self {
            task_type,
            payload,
            tenant: crate::domain::api_key::DEFAULT_TENANT.to_owned(),
        })
    }

    /// The same web task, `tenant`'s.
    pub fn for_tenant(mut self, tenant: &str) -> Self {
        self.tenant = tenant.to_owned();
        self
    }
}

/// Checks a requested scheduler type before anything is sent to the scheduler.
pub fn validate_scheduler_type(scheduler_type: &str) -> Result<(), WebTaskValidationError> {
    if valid_type_name(scheduler_type) {
        Ok(())
    } else {
        Err(WebTaskValidationError::SchedulerTypeLength)
    }
}

fn valid_type_name(name: &str) -> bool {
    let chars = name.chars().count();
    chars > 0 && chars <= TASK_TYPE_MAX_CHARS && !name.trim().is_empty() && !name.contains('\0')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip() {
        for status in WebTaskStatus::ALL {
            assert_eq!(WebTaskStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(WebTaskStatus::parse("RUNNING"), None);
    }

    #[test]
    fn type_names_are_bounded_and_not_blank() {
        assert!(NewWebTask::validate("demo".into(), serde_json::json!("hello")).is_ok());
        for bad in [String::new(), "   ".into(), "x".repeat(101)] {
            assert_eq!(
                NewWebTask::validate(bad.clone(), serde_json::Value::Null),
                Err(WebTaskValidationError::TypeLength),
                "{bad:?}"
            );
            assert!(validate_scheduler_type(&bad).is_err());
        }
        assert!(validate_scheduler_type(&"x".repeat(100)).is_ok());
        assert!(NewWebTask::validate("a\0".into(), serde_json::Value::Null).is_err());
        assert_eq!(
            NewWebTask::validate("demo".into(), serde_json::json!({"x": "\0"})),
            Err(WebTaskValidationError::Unstorable {
                field: "payload",
                reason: dtp_contract::UnstorableJson::NulCharacter
            })
        );
        let too_large = NewWebTask::validate("demo".into(), serde_json::json!({"n": 1.7e308}));
        assert_eq!(
            too_large.unwrap_err().to_string(),
            "payload must not hold numbers of magnitude 1e308 or more"
        );
    }
}
