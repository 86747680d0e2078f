//! Every call TaskPilot makes to the DTP engine, through `dtp-client` (where the wire
//! contract lives). Failures are sorted into TaskPilot's outcomes here; what each outcome
//! means for TaskPilot's own clients is decided in `http::error`, never here.

use std::time::{Duration, Instant};

use crate::metrics::{CallLabels, SchedulerMetrics};

use dtp_client::{DtpClient, DtpError, UNEXPLAINED_REFUSAL};
use dtp_contract::{AttemptResponse, CreateTaskRequest, EventPage, TaskResponse, TaskTypeList};
use service_http::request_trace::RequestContext;

/// The scheduler did not give us what we asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchedulerError {
    /// 404 from the scheduler.
    #[error("scheduler has no task {id}: {message}")]
    NotFound { id: i64, message: String },
    /// Any other 4xx: the scheduler refused the request and said why.
    #[error("scheduler refused ({status}): {message}")]
    Rejected {
        status: u16,
        code: String,
        message: String,
    },
    /// 5xx, or an answer we cannot read.
    #[error("scheduler failed ({status}): {message}")]
    Failed { status: u16, message: String },
    /// No answer: connection refused, reset or timed out.
    #[error("scheduler unreachable: {0}")]
    Unreachable(String),
}

/// A scheduler task as returned by create: fresh, or found by its idempotency key.
#[derive(Debug, Clone)]
pub struct CreatedTask {
    pub task: TaskResponse,
    pub newly_created: bool,
}

/// Which call a result belongs to (for logs).
#[derive(Debug, Clone, Copy)]
enum Operation {
    Create,
    Get,
    GetAttempts,
    Cancel,
    Events,
    TaskTypes,
}

impl Operation {
    fn name(self) -> &'static str {
        match self {
            Operation::Create => "create",
            Operation::Get => "get",
            Operation::GetAttempts => "get_attempts",
            Operation::Cancel => "cancel",
            Operation::Events => "events",
            Operation::TaskTypes => "task_types",
        }
    }
}

#[derive(Clone)]
pub struct SchedulerClient {
    dtp: DtpClient,
    metrics: Option<SchedulerMetrics>,
}

const HEALTH_PROBE_TIMEOUT: Duration = Duration::from_secs(1);

impl SchedulerClient {
    /// A client of the engine at `base_url`, presenting `token` (its service token) if any.
    pub fn new(base_url: &str, timeout: Duration, token: Option<&str>) -> Result<Self, reqwest::Error> {
        let mut dtp = DtpClient::new(base_url, timeout)?;
        if let Some(token) = token {
            dtp = dtp.with_bearer(token);
        }
        Ok(Self { dtp, metrics: None })
    }

    /// Records calls in `metrics` from now on.
    pub fn with_metrics(mut self, metrics: SchedulerMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Whether the scheduler answers its health probe (for readiness reports).
    pub async fn answers(&self) -> bool {
        self.dtp.answers(HEALTH_PROBE_TIMEOUT).await
    }

    fn observe<T>(&self, operation: Operation, started: Instant, result: &Result<T, SchedulerError>) {
        let Some(metrics) = &self.metrics else { return };
        let (outcome, status) = match result {
            Ok(_) => ("ok", "2xx".to_owned()),
            Err(SchedulerError::NotFound { .. }) => ("not_found", "404".to_owned()),
            Err(SchedulerError::Rejected { status, .. }) => ("rejected", status.to_string()),
            Err(SchedulerError::Failed { status, .. }) => ("failed", status.to_string()),
            Err(SchedulerError::Unreachable(_)) => ("unreachable", "none".to_owned()),
        };
        let calls = CallLabels {
            operation: operation.name(),
            outcome,
            status,
        };
        metrics.observe(calls, started.elapsed().as_secs_f64());
    }

    /// Runs one call for the request `context` is of, sorting its failure and recording it.
    async fn call<T, F>(
        &self,
        operation: Operation,
        id: Option<i64>,
        context: &RequestContext,
        call: impl FnOnce(DtpClient) -> F,
    ) -> Result<T, SchedulerError>
    where
        F: std::future::Future<Output = Result<T, DtpError>>,
    {
        let started = Instant::now();
        let result = call(self.dtp.with_headers(traced(context)))
            .await
            .map_err(|e| sorted(operation, id, e));
        self.observe(operation, started, &result);
        result
    }

    /// `POST /tasks`.
    pub async fn create_task(
        &self,
        request: &CreateTaskRequest,
        context: &RequestContext,
    ) -> Result<CreatedTask, SchedulerError> {
        let submitted = self
            .call(Operation::Create, None, context, |dtp| async move {
                dtp.create_task(request).await
            })
            .await?;
        Ok(CreatedTask {
            task: submitted.value,
            newly_created: submitted.created,
        })
    }

    /// `GET /tasks/{id}`.
    pub async fn get_task(&self, id: i64, context: &RequestContext) -> Result<TaskResponse, SchedulerError> {
        self.call(Operation::Get, Some(id), context, |dtp| async move {
            dtp.task(id).await
        })
        .await
    }

    /// `GET /tasks/{id}/attempts`: the attempt history, oldest first.
    pub async fn get_attempts(
        &self,
        id: i64,
        context: &RequestContext,
    ) -> Result<Vec<AttemptResponse>, SchedulerError> {
        self.call(Operation::GetAttempts, Some(id), context, |dtp| async move {
            dtp.attempts(id).await
        })
        .await
    }

    /// `GET /events`: a page of the change feed after `after` (a cursor, or `latest`),
    /// waiting up to `wait` when nothing is new. An expired cursor is `Rejected` with status 410.
    pub async fn events(&self, after: &str, limit: u32, wait: Duration) -> Result<EventPage, SchedulerError> {
        let context = RequestContext::started_here();
        self.call(Operation::Events, None, &context, |dtp| async move {
            dtp.events(Some(after), limit, wait).await
        })
        .await
    }

    /// `GET /task-types`: the types the scheduler runs, for a bind to choose from.
    pub async fn task_types(&self, context: &RequestContext) -> Result<TaskTypeList, SchedulerError> {
        self.call(Operation::TaskTypes, None, context, |dtp| async move {
            dtp.task_types().await
        })
        .await
    }

    /// `PUT /tasks/{id}/cancel`: `Ok` once the task is CANCELED.
    pub async fn cancel_task(&self, id: i64, context: &RequestContext) -> Result<(), SchedulerError> {
        self.call(Operation::Cancel, Some(id), context, |dtp| async move {
            dtp.cancel_task(id).await
        })
        .await
    }
}

/// The request id and trace context of the request a scheduler call is made for.
fn traced(context: &RequestContext) -> reqwest::header::HeaderMap {
    context
        .forwarded_headers()
        .into_iter()
        .filter_map(|(name, value)| {
            let value = reqwest::header::HeaderValue::from_str(&value).ok()?;
            Some((reqwest::header::HeaderName::from_static(name), value))
        })
        .collect()
}

/// What a failed call means to TaskPilot: the task missing, a refusal, a failure, or no answer.
fn sorted(operation: Operation, id: Option<i64>, err: DtpError) -> SchedulerError {
    match err {
        DtpError::Unreachable(reason) => {
            tracing::warn!(?operation, error = %reason, "scheduler unreachable");
            SchedulerError::Unreachable(reason)
        }
        // TaskPilot's own credentials were refused: its failure, not the caller's request's.
        DtpError::Refused {
            status: status @ (401 | 403),
            body,
        } => {
            tracing::error!(?operation, status, code = %body.code, "the scheduler refused TaskPilot's service token");
            SchedulerError::Failed {
                status,
                message: format!("the scheduler refused TaskPilot's credentials ({})", body.code),
            }
        }
        // Over TaskPilot's quota at the scheduler: the scheduler is busy for now, as when it is
        // unreachable, not a refusal of the caller's request.
        DtpError::Refused { status: 429, body } => {
            tracing::warn!(?operation, message = %body.message, "the scheduler is rate limiting TaskPilot");
            SchedulerError::Unreachable(format!(
                "the scheduler is rate limiting TaskPilot: {}",
                body.message
            ))
        }
        DtpError::Refused { status: 404, body } if id.is_some() => SchedulerError::NotFound {
            id: id.unwrap_or_default(),
            message: body.message,
        },
        DtpError::Refused { status, body } => {
            tracing::debug!(?operation, status, message = %body.message, "scheduler refused");
            let code = if body.code == UNEXPLAINED_REFUSAL {
                "SCHEDULER_REJECTED".to_owned()
            } else {
                body.code
            };
            SchedulerError::Rejected {
                status,
                code,
                message: body.message,
            }
        }
        DtpError::LeaseLost { message, .. } => SchedulerError::Rejected {
            status: 409,
            code: "LEASE_LOST".into(),
            message,
        },
        DtpError::Failed { status, message } => {
            tracing::error!(?operation, status, %message, "scheduler failed");
            SchedulerError::Failed { status, message }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dtp_contract::ErrorBody;

    #[test]
    fn the_scheduler_s_quota_is_unavailability_not_a_refusal_of_the_request() {
        let limited = DtpError::Refused {
            status: 429,
            body: ErrorBody {
                code: "RATE_LIMITED".into(),
                message: "rate limit of 10000 requests per second exceeded".into(),
            },
        };
        match sorted(Operation::Create, None, limited) {
            SchedulerError::Unreachable(reason) => assert!(reason.contains("rate limiting"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }
}
