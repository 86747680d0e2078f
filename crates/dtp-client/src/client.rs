//! `DtpClient`: one method per route of the engine's API. Answers are sorted into typed
//! outcomes: the value asked for, the engine's refusal with its code, a lost lease, or no
//! usable answer. What a refusal means to the caller is the caller's to decide.

use std::time::Duration;

use dtp_contract::{
    AttemptResponse, CompleteRequest, CreateTaskBatchRequest, CreateTaskRequest, ErrorBody, EventPage,
    FailRequest, HeartbeatRequest, HeartbeatResponse, LeaseBatch, LeaseLostBody, LeaseLostReason,
    LeaseRequest, TaskBatchResponse, TaskPage, TaskResponse, TaskTypeList,
};
use reqwest::header::HeaderMap;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// The code of a refusal that came without the engine's error body (from a proxy, say).
pub const UNEXPLAINED_REFUSAL: &str = "UNEXPLAINED_REFUSAL";

/// How a call to the engine did not give what was asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DtpError {
    /// No answer: connection refused or reset, or the call timed out.
    #[error("the engine did not answer: {0}")]
    Unreachable(String),
    /// A 4xx with the engine's error body.
    #[error("the engine refused ({status} {}): {}", body.code, body.message)]
    Refused { status: u16, body: ErrorBody },
    /// 409 `LEASE_LOST`: the lease is no longer its task's current one; stop working on it.
    #[error("lease lost ({reason:?}): {message}")]
    LeaseLost {
        reason: LeaseLostReason,
        message: String,
    },
    /// A 5xx, or an answer that could not be read.
    #[error("the engine failed ({status}): {message}")]
    Failed { status: u16, message: String },
}

impl DtpError {
    /// The engine's error code of a refusal (`TASK_NOT_FOUND`, `LEASE_NOT_FOUND`, ...).
    pub fn code(&self) -> Option<&str> {
        match self {
            DtpError::Refused { body, .. } => Some(&body.code),
            DtpError::LeaseLost { .. } => Some("LEASE_LOST"),
            _ => None,
        }
    }
}

/// The task a submission names: made by it, or found by its idempotency key.
#[derive(Debug, Clone, PartialEq)]
pub struct Submitted<T> {
    pub value: T,
    /// `true` for 201 (something new was made), `false` for 200 (all of it existed).
    pub created: bool,
}

/// A client of one engine. Cheap to clone; clones share connections.
#[derive(Clone)]
pub struct DtpClient {
    http: reqwest::Client,
    base_url: String,
    headers: HeaderMap,
}

impl DtpClient {
    /// A client of the engine at `base_url` whose calls give up after `timeout`.
    pub fn new(base_url: &str, timeout: Duration) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(2)))
            .pool_idle_timeout(Duration::from_secs(30))
            .tcp_nodelay(true)
            .build()?;
        Ok(Self::with_http(base_url, http))
    }

    /// A client on an HTTP client of the caller's (its timeouts and pool).
    pub fn with_http(base_url: &str, http: reqwest::Client) -> Self {
        Self {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            headers: HeaderMap::new(),
        }
    }

    /// The same client, sending `headers` with every call too (trace context, credentials).
    pub fn with_headers(&self, headers: HeaderMap) -> Self {
        let mut all = self.headers.clone();
        all.extend(headers);
        Self {
            headers: all,
            ..self.clone()
        }
    }

    /// The same client, presenting `token` (a service token) with every call.
    pub fn with_bearer(&self, token: &str) -> Self {
        let mut headers = HeaderMap::new();
        if let Ok(mut value) = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}")) {
            value.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        self.with_headers(headers)
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Whether the engine answers `GET /healthz` within `timeout`.
    pub async fn answers(&self, timeout: Duration) -> bool {
        self.request(Method::GET, "/healthz")
            .timeout(timeout)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    }

    /// `POST /tasks`.
    pub async fn create_task(&self, task: &CreateTaskRequest) -> Result<Submitted<TaskResponse>, DtpError> {
        self.submit("/tasks", task).await
    }

    /// `POST /tasks/batch`.
    pub async fn create_tasks(
        &self,
        batch: &CreateTaskBatchRequest,
    ) -> Result<Submitted<TaskBatchResponse>, DtpError> {
        self.submit("/tasks/batch", batch).await
    }

    /// `GET /tasks/{id}`.
    pub async fn task(&self, id: i64) -> Result<TaskResponse, DtpError> {
        self.json(self.request(Method::GET, &format!("/tasks/{id}")))
            .await
    }

    /// `GET /tasks?…`, with the listing's query parameters as given.
    pub async fn tasks(&self, query: &[(&str, &str)]) -> Result<TaskPage, DtpError> {
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(query)
            .finish();
        self.json(self.request(Method::GET, &format!("/tasks?{query}")))
            .await
    }

    /// `GET /tasks/{id}/attempts`, oldest first.
    pub async fn attempts(&self, id: i64) -> Result<Vec<AttemptResponse>, DtpError> {
        self.json(self.request(Method::GET, &format!("/tasks/{id}/attempts")))
            .await
    }

    /// `PUT /tasks/{id}/cancel`: `Ok` once the task is CANCELED.
    pub async fn cancel_task(&self, id: i64) -> Result<(), DtpError> {
        self.empty(self.request(Method::PUT, &format!("/tasks/{id}/cancel")))
            .await
    }

    /// `GET /events`: the change feed after `after` (an event's or a page's cursor, or
    /// `latest`; `None`: the oldest kept), waiting up to `wait` when nothing is new.
    /// A cursor older than the engine keeps is refused with `CURSOR_EXPIRED` (410).
    pub async fn events(
        &self,
        after: Option<&str>,
        limit: u32,
        wait: Duration,
    ) -> Result<EventPage, DtpError> {
        let query = {
            let mut query = url::form_urlencoded::Serializer::new(String::new());
            query
                .append_pair("limit", &limit.to_string())
                .append_pair("waitMs", &wait.as_millis().to_string());
            if let Some(after) = after {
                query.append_pair("after", after);
            }
            query.finish()
        };
        let request = self.request(Method::GET, &format!("/events?{query}"));
        self.json(request.timeout(wait + LONG_POLL_MARGIN)).await
    }

    /// `GET /task-types`.
    pub async fn task_types(&self) -> Result<TaskTypeList, DtpError> {
        self.json(self.request(Method::GET, "/task-types")).await
    }

    /// `POST /leases`: leases due tasks, waiting up to `waitMs` when none is due.
    pub async fn lease(&self, ask: &LeaseRequest) -> Result<LeaseBatch, DtpError> {
        let wait = Duration::from_millis(u64::try_from(ask.wait_ms.unwrap_or(0)).unwrap_or(0));
        // A long-poll may take its whole wait: give it that beyond the usual timeout.
        let request = self.request(Method::POST, "/leases").json(ask);
        self.json(request.timeout(wait + LONG_POLL_MARGIN)).await
    }

    /// `POST /leases/{token}/heartbeat`.
    pub async fn heartbeat(
        &self,
        lease_token: &str,
        details: Option<serde_json::Value>,
    ) -> Result<HeartbeatResponse, DtpError> {
        let body = HeartbeatRequest { details };
        self.json(self.lease_call(lease_token, "heartbeat").json(&body))
            .await
    }

    /// `POST /leases/{token}/complete`.
    pub async fn complete(
        &self,
        lease_token: &str,
        result: Option<serde_json::Value>,
    ) -> Result<(), DtpError> {
        let body = CompleteRequest { result };
        self.empty(self.lease_call(lease_token, "complete").json(&body))
            .await
    }

    /// `POST /leases/{token}/fail`.
    pub async fn fail(&self, lease_token: &str, failure: &FailRequest) -> Result<(), DtpError> {
        self.empty(self.lease_call(lease_token, "fail").json(failure))
            .await
    }

    /// `POST /leases/{token}/release`.
    pub async fn release(&self, lease_token: &str) -> Result<(), DtpError> {
        self.empty(self.lease_call(lease_token, "release")).await
    }

    fn lease_call(&self, lease_token: &str, action: &str) -> RequestBuilder {
        self.request(Method::POST, &format!("/leases/{lease_token}/{action}"))
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base_url))
            .headers(self.headers.clone())
    }

    async fn submit<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<Submitted<T>, DtpError> {
        let response = send(self.request(Method::POST, path).json(body)).await?;
        let created = response.status() == StatusCode::CREATED;
        Ok(Submitted {
            value: read(response).await?,
            created,
        })
    }

    async fn json<T: DeserializeOwned>(&self, request: RequestBuilder) -> Result<T, DtpError> {
        read(send(request).await?).await
    }

    async fn empty(&self, request: RequestBuilder) -> Result<(), DtpError> {
        let response = send(request).await?;
        if response.status().is_success() {
            return Ok(());
        }
        Err(refusal(response).await)
    }
}

/// How much longer than its wait a long-poll may take before the client gives up on it.
const LONG_POLL_MARGIN: Duration = Duration::from_secs(10);

async fn send(request: RequestBuilder) -> Result<Response, DtpError> {
    request.send().await.map_err(|e| {
        DtpError::Unreachable(if e.is_timeout() {
            "the call timed out".to_owned()
        } else {
            error_chain(&e)
        })
    })
}

async fn read<T: DeserializeOwned>(response: Response) -> Result<T, DtpError> {
    let status = response.status();
    if !status.is_success() {
        return Err(refusal(response).await);
    }
    response.json::<T>().await.map_err(|e| {
        if e.is_timeout() {
            DtpError::Unreachable("the call timed out".into())
        } else {
            DtpError::Failed {
                status: status.as_u16(),
                message: format!("unreadable answer: {e}"),
            }
        }
    })
}

async fn refusal(response: Response) -> DtpError {
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    if status == StatusCode::CONFLICT {
        if let Ok(lost) = serde_json::from_str::<LeaseLostBody>(&text) {
            return DtpError::LeaseLost {
                reason: lost.reason,
                message: lost.message,
            };
        }
    }
    match serde_json::from_str::<ErrorBody>(&text) {
        Ok(body) if status.is_client_error() => DtpError::Refused {
            status: status.as_u16(),
            body,
        },
        Ok(body) => DtpError::Failed {
            status: status.as_u16(),
            message: body.message,
        },
        Err(_) if status.is_client_error() => DtpError::Refused {
            status: status.as_u16(),
            body: ErrorBody {
                code: UNEXPLAINED_REFUSAL.to_owned(),
                message: status.canonical_reason().unwrap_or("refused").to_owned(),
            },
        },
        Err(_) => DtpError::Failed {
            status: status.as_u16(),
            message: status.canonical_reason().unwrap_or("no error body").to_owned(),
        },
    }
}

fn error_chain(err: &reqwest::Error) -> String {
    let mut line = err.to_string();
    let mut cause = std::error::Error::source(err);
    while let Some(e) = cause {
        line.push_str(": ");
        line.push_str(&e.to_string());
        cause = e.source();
    }
    line
}
