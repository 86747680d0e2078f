//! The web task: the user-facing record TaskPilot owns. Its status says only where the
//! record stands in the control plane (PENDING until bound, SUBMITTED once bound);
//! execution state belongs to the scheduler and is read through the execution view.

pub const TASK_TYPE_MAX_CHARS: usize = 100;

/// Room a submission to the scheduler takes beyond the payload itself: the envelope's
/// fields, the scheduler type (at most 100 characters, escaped) and the idempotency key.
pub const SUBMISSION_OVERHEAD_BYTES: usize = 2 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, utoipa::ToSchema)]
#[schema(rename_all = "UPPERCASE")]
pub enum WebTaskStatus {
    /// Created, not yet handed to the scheduler.
    Pending,
    /// Bound to a scheduler task (`schedulerTaskId` is set).
    Submitted,
}

dtp_contract::wire_names!(WebTaskStatus {
    Pending => "PENDING",
    Submitted => "SUBMITTED",
});

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebTaskValidationError {
    #[error("type must be 1 to {TASK_TYPE_MAX_CHARS} characters")]
    TypeLength,
    #[error("schedulerType must be 1 to {TASK_TYPE_MAX_CHARS} characters")]
    SchedulerTypeLength,
    /// The payload would make a submission larger than the scheduler takes: refused at
    /// create, since the task could never be bound.
    #[error("payload is {size} bytes as JSON; at most {limit} fit in a submission to the scheduler")]
    PayloadTooLarge { size: usize, limit: usize },
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
    /// Checks a create request; `scheduler_max_body_bytes` is the largest body the scheduler
    /// takes, which the payload wrapped into a submission must fit.
    pub fn validate(
        task_type: String,
        payload: serde_json::Value,
        scheduler_max_body_bytes: usize,
    ) -> Result<Self, WebTaskValidationError> {
        if !valid_type_name(&task_type) {
            return Err(WebTaskValidationError::TypeLength);
        }
        // The submission nests the payload one level down in its own payload.
        dtp_contract::check_storable_within(&payload, dtp_contract::MAX_JSON_DEPTH - 1).map_err(
            |reason| WebTaskValidationError::Unstorable {
                field: "payload",
                reason,
            },
        )?;
        let limit = scheduler_max_body_bytes.saturating_sub(SUBMISSION_OVERHEAD_BYTES);
        let size = dtp_contract::json_size(&payload);
        if size > limit {
            return Err(WebTaskValidationError::PayloadTooLarge { size, limit });
        }
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

    const LIMIT: usize = 1024 * 1024;

    #[test]
    fn statuses_round_trip() {
        for status in WebTaskStatus::ALL {
            assert_eq!(WebTaskStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(WebTaskStatus::parse("RUNNING"), None);
    }

    #[test]
    fn type_names_are_bounded_and_not_blank() {
        assert!(NewWebTask::validate("demo".into(), serde_json::json!("hello"), LIMIT).is_ok());
        for bad in [String::new(), "   ".into(), "x".repeat(101)] {
            assert_eq!(
                NewWebTask::validate(bad.clone(), serde_json::Value::Null, LIMIT),
                Err(WebTaskValidationError::TypeLength),
                "{bad:?}"
            );
            assert!(validate_scheduler_type(&bad).is_err());
        }
        assert!(validate_scheduler_type(&"x".repeat(100)).is_ok());
        assert!(NewWebTask::validate("a\0".into(), serde_json::Value::Null, LIMIT).is_err());
        assert_eq!(
            NewWebTask::validate("demo".into(), serde_json::json!({"x": "\0"}), LIMIT),
            Err(WebTaskValidationError::Unstorable {
                field: "payload",
                reason: dtp_contract::UnstorableJson::NulCharacter
            })
        );
        let too_large = NewWebTask::validate("demo".into(), serde_json::json!({"n": 1.7e308}), LIMIT);
        assert_eq!(
            too_large.unwrap_err().to_string(),
            "payload must not hold numbers of magnitude 1e308 or more"
        );
    }

    #[test]
    fn payloads_must_fit_a_submission_to_the_scheduler() {
        let limit = 10_000;
        let fits = "x".repeat(limit - SUBMISSION_OVERHEAD_BYTES - 2);
        assert!(NewWebTask::validate("demo".into(), serde_json::json!(fits), limit).is_ok());
        let over = "x".repeat(limit - SUBMISSION_OVERHEAD_BYTES - 1);
        assert_eq!(
            NewWebTask::validate("demo".into(), serde_json::json!(over), limit),
            Err(WebTaskValidationError::PayloadTooLarge {
                size: limit - SUBMISSION_OVERHEAD_BYTES + 1,
                limit: limit - SUBMISSION_OVERHEAD_BYTES
            })
        );
        let deep = (0..100).fold(serde_json::json!(1), |inner, _| serde_json::json!([inner]));
        assert_eq!(
            NewWebTask::validate("demo".into(), deep, LIMIT),
            Err(WebTaskValidationError::Unstorable {
                field: "payload",
                reason: dtp_contract::UnstorableJson::TooDeep { max_depth: 99 }
            })
        );
    }
}
