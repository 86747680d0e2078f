//! Every HTTP call TaskPilot makes to the DTP engine. Answers are sorted into typed
//! outcomes here; what each outcome means for TaskPilot's own clients is decided in
//! `http::error`, never here.

use std::time::{Duration, Instant};

use crate::metrics::{CallLabels, SchedulerMetrics};

use dtp_contract::{AttemptResponse, CreateTaskRequest, ErrorBody, TaskResponse};
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use service_runtime::request_trace::RequestContext;

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
}

impl Operation {
    fn name(self) -> &'static str {
        match self {
            Operation::Create => "create",
            Operation::Get => "get",
            Operation::GetAttempts => "get_attempts",
            Operation::Cancel => "cancel",
        }
    }
}

#[derive(Clone)]
pub struct SchedulerClient {
    http: reqwest::Client,
    base_url: String,
    metrics: Option<SchedulerMetrics>,
}

const HEALTH_PROBE_TIMEOUT: Duration = Duration::from_secs(1);

impl SchedulerClient {
    pub fn new(base_url: &str, timeout: Duration) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(2)))
            .pool_idle_timeout(Duration::from_secs(30))
            .build()?;
        Ok(Self {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            metrics: None,
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Records calls in `metrics` from now on.
    pub fn with_metrics(mut self, metrics: SchedulerMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Whether the scheduler answers its health probe (for readiness reports).
    pub async fn answers(&self) -> bool {
        self.http
            .get(format!("{}/healthz", self.base_url))
            .timeout(HEALTH_PROBE_TIMEOUT)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
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

    /// `POST /tasks`.
    pub async fn create_task(
        &self,
        request: &CreateTaskRequest,
        context: &RequestContext,
    ) -> Result<CreatedTask, SchedulerError> {
        let started = Instant::now();
        let result: Result<CreatedTask, SchedulerError> = async {
            let response = self
                .http
                .post(format!("{}/tasks", self.base_url))
                .headers(traced(context))
                .json(request)
                .send()
                .await
                .map_err(|e| unreachable(Operation::Create, &e))?;
            let newly_created = response.status() == StatusCode::CREATED;
            let task = read_json(Operation::Create, None, response).await?;
            Ok(CreatedTask { task, newly_created })
        }
        .await;
        self.observe(Operation::Create, started, &result);
        result
    }

    /// `GET /tasks/{id}`.
    pub async fn get_task(&self, id: i64, context: &RequestContext) -> Result<TaskResponse, SchedulerError> {
        let started = Instant::now();
        let result: Result<TaskResponse, SchedulerError> = async {
            let response = self
                .http
                .get(format!("{}/tasks/{id}", self.base_url))
                .headers(traced(context))
                .send()
                .await
                .map_err(|e| unreachable(Operation::Get, &e))?;
            read_json(Operation::Get, Some(id), response).await
        }
        .await;
        self.observe(Operation::Get, started, &result);
        result
    }

    /// `GET /tasks/{id}/attempts`: the attempt history, oldest first.
    pub async fn get_attempts(
        &self,
        id: i64,
        context: &RequestContext,
    ) -> Result<Vec<AttemptResponse>, SchedulerError> {
        let started = Instant::now();
        let result: Result<Vec<AttemptResponse>, SchedulerError> = async {
            let response = self
                .http
                .get(format!("{}/tasks/{id}/attempts", self.base_url))
                .headers(traced(context))
                .send()
                .await
                .map_err(|e| unreachable(Operation::GetAttempts, &e))?;
            read_json(Operation::GetAttempts, Some(id), response).await
        }
        .await;
        self.observe(Operation::GetAttempts, started, &result);
        result
    }

    /// `PUT /tasks/{id}/cancel`: `Ok` once the task is CANCELED.
    pub async fn cancel_task(&self, id: i64, context: &RequestContext) -> Result<(), SchedulerError> {
        let started = Instant::now();
        let result: Result<(), SchedulerError> = async {
            let response = self
                .http
                .put(format!("{}/tasks/{id}/cancel", self.base_url))
                .headers(traced(context))
                .send()
                .await
                .map_err(|e| unreachable(Operation::Cancel, &e))?;
            if response.status().is_success() {
                return Ok(());
            }
            Err(refusal(Operation::Cancel, Some(id), response).await)
        }
        .await;
        self.observe(Operation::Cancel, started, &result);
        result
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

fn unreachable(operation: Operation, err: &reqwest::Error) -> SchedulerError {
    tracing::warn!(?operation, error = %err, "scheduler unreachable");
    SchedulerError::Unreachable(if err.is_timeout() {
        "request timed out".to_owned()
    } else {
        err.to_string()
    })
}

async fn read_json<T: DeserializeOwned>(
    operation: Operation,
    id: Option<i64>,
    response: reqwest::Response,
) -> Result<T, SchedulerError> {
    let status = response.status();
    if !status.is_success() {
        return Err(refusal(operation, id, response).await);
    }
    response.json::<T>().await.map_err(|e| {
        tracing::error!(?operation, error = %e, "unreadable scheduler answer");
        if e.is_timeout() {
            SchedulerError::Unreachable("request timed out".into())
        } else {
            SchedulerError::Failed {
                status: status.as_u16(),
                message: format!("unreadable scheduler answer: {e}"),
            }
        }
    })
}

async fn refusal(operation: Operation, id: Option<i64>, response: reqwest::Response) -> SchedulerError {
    let status = response.status();
    let body = response.json::<ErrorBody>().await.ok();
    let message = body
        .as_ref()
        .map(|b| b.message.clone())
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned());
    tracing::debug!(?operation, status = status.as_u16(), %message, "scheduler refused");
    match (status, id) {
        (StatusCode::NOT_FOUND, Some(id)) => SchedulerError::NotFound { id, message },
        (s, _) if s.is_client_error() => SchedulerError::Rejected {
            status: s.as_u16(),
            code: body.map_or_else(|| "SCHEDULER_REJECTED".to_owned(), |b| b.code),
            message,
        },
        (s, _) => SchedulerError::Failed {
            status: s.as_u16(),
            message,
        },
    }
}
