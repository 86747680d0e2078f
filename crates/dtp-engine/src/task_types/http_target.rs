//! HTTP-target delivery: each attempt of an HTTP type is one request to the type's URL,
//! with the task in a JSON body, identifying headers and, when a secret is set, a
//! Standard Webhooks signature. What the answer means is `domain::http_delivery`'s rule.
//! Every target shares one client, so connections to a target are reused across tasks.

use std::time::Duration;

use dtp_contract::{HttpDelivery, HttpTargetInfo, MAX_RESULT_BYTES};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE, RETRY_AFTER};

use super::types_file::HttpTargetSpec;
use super::{HandlerFuture, TaskContext, TaskError, TaskHandler, TaskOutput};
use crate::domain::http_delivery::{
    failed_answer_line, judge_answer, DeliveryVerdict, ERROR_BODY_PREFIX_BYTES,
};
use crate::domain::task_result::check_kept;
use crate::domain::webhook_signature::signature;

/// The `User-Agent` of every delivery.
pub const USER_AGENT: &str = concat!("dtp-engine/", env!("CARGO_PKG_VERSION"));

/// How long an idle connection to a target is kept for the next delivery.
const IDLE_CONNECTION_KEPT: Duration = Duration::from_secs(60);

/// The client every HTTP target sends through: redirects are never followed (a target
/// cannot send a task elsewhere), TLS is rustls with the system's roots.
pub fn shared_client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(USER_AGENT)
        .tcp_nodelay(true)
        .pool_idle_timeout(IDLE_CONNECTION_KEPT)
        .build()
}

/// One HTTP type's target.
pub struct HttpTarget {
    url: String,
    method: reqwest::Method,
    headers: HeaderMap,
    signing_key: Option<Vec<u8>>,
    client: reqwest::Client,
}

impl HttpTarget {
    pub fn new(spec: &HttpTargetSpec, client: reqwest::Client) -> Self {
        let headers = spec
            .headers
            .iter()
            .map(|h| (h.name.clone(), h.value.clone()))
            .collect();
        Self {
            url: spec.url.clone(),
            method: spec.method.clone(),
            headers,
            signing_key: spec.signing_secret.as_ref().map(|s| s.key.clone()),
            client,
        }
    }

    /// The target as `GET /task-types` shows it: values read from the environment redacted.
    pub fn info(spec: &HttpTargetSpec) -> HttpTargetInfo {
        HttpTargetInfo {
            url: spec.url.clone(),
            method: spec.method.to_string(),
            headers: spec
                .headers
                .iter()
                .map(|h| {
                    let shown = match &h.from_env {
                        Some(_) => "[redacted]".to_owned(),
                        None => String::from_utf8_lossy(h.value.as_bytes()).into_owned(),
                    };
                    (h.name.to_string(), shown)
                })
                .collect(),
            signing_secret_env: spec.signing_secret.as_ref().map(|s| s.env.clone()),
        }
    }

    /// The request of one attempt.
    fn request(&self, ctx: &TaskContext) -> Result<reqwest::RequestBuilder, TaskError> {
        let body = serde_json::to_vec(&HttpDelivery {
            task_id: ctx.task_id,
            task_type: ctx.task_type.clone(),
            attempt: ctx.attempt,
            max_attempts: ctx.max_attempts,
            payload: ctx.payload.clone(),
            created_at: ctx.created_at,
            scheduled_for: ctx.scheduled_for,
        })
        .map_err(|e| TaskError::retry(format!("could not encode the request body: {e}")))?;
        let mut headers = self.headers.clone();
        let mut set = |name: &'static str, value: String| {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(HeaderName::from_static(name), value);
            }
        };
        set("content-type", "application/json".into());
        set("dtp-task-id", ctx.task_id.to_string());
        set("dtp-task-type", ctx.task_type.clone());
        set("dtp-attempt", ctx.attempt.to_string());
        set("idempotency-key", format!("dtp-{}", ctx.task_id));
        if let Some(key) = &self.signing_key {
            let webhook_id = format!("dtp-{}-{}", ctx.task_id, ctx.attempt);
            let timestamp = chrono::Utc::now().timestamp();
            set("webhook-signature", signature(key, &webhook_id, timestamp, &body));
            set("webhook-id", webhook_id);
            set("webhook-timestamp", timestamp.to_string());
        }
        Ok(self
            .client
            .request(self.method.clone(), &self.url)
            .headers(headers)
            .body(body))
    }
}

impl TaskHandler for HttpTarget {
    fn run(&self, ctx: TaskContext) -> HandlerFuture {
        let request = self.request(&ctx);
        let url = self.url.clone();
        Box::pin(async move {
            let delivery = async {
                let response = request?
                    .send()
                    .await
                    .map_err(|e| TaskError::retry(send_failure(&e)))?;
                outcome(response, &url).await
            };
            // Dropping the delivery drops its connection: the target sees the request aborted.
            tokio::select! {
                outcome = delivery => outcome,
                () = ctx.cancel.cancelled() => Err(TaskError::retry("the request was aborted: the attempt was stopped")),
            }
        })
    }
}

/// What the target's answer makes of the attempt.
async fn outcome(mut response: reqwest::Response, url: &str) -> Result<TaskOutput, TaskError> {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    match judge_answer(status, retry_after.as_deref(), chrono::Utc::now()) {
        DeliveryVerdict::Delivered => {
            let json = response
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(is_json);
            // Read to the end (up to the limit) so the connection can serve the next delivery.
            let body = read_whole(&mut response, MAX_RESULT_BYTES).await;
            Ok(body
                .filter(|_| json)
                .and_then(|bytes| serde_json::from_slice(&bytes).ok())
                .filter(|value| check_kept(value).is_ok()))
        }
        verdict => {
            let body = read_prefix(&mut response, ERROR_BODY_PREFIX_BYTES).await;
            let line = failed_answer_line(status, url, &body);
            Err(match verdict {
                DeliveryVerdict::Retry { after: Some(delay) } => TaskError::retry_after(line, delay),
                DeliveryVerdict::Retry { after: None } => TaskError::retry(line),
                _ => TaskError::not_retryable(line),
            })
        }
    }
}

fn is_json(content_type: &str) -> bool {
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    media_type.eq_ignore_ascii_case("application/json")
}

/// The whole body when it has at most `limit` bytes; `None` when it is longer or could not
/// be read to its end.
async fn read_whole(response: &mut reqwest::Response, limit: usize) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.ok()? {
        if body.len() + chunk.len() > limit {
            return None;
        }
        body.extend_from_slice(&chunk);
    }
    Some(body)
}

/// The first `limit` bytes of the body, or what could be read of them.
async fn read_prefix(response: &mut reqwest::Response, limit: usize) -> Vec<u8> {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = limit - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() == limit {
            break;
        }
    }
    body
}

/// One line for a request that got no answer.
fn send_failure(err: &reqwest::Error) -> String {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => return "connection refused".into(),
                std::io::ErrorKind::ConnectionReset => return "connection reset".into(),
                std::io::ErrorKind::ConnectionAborted => return "connection aborted".into(),
                _ => {}
            }
        }
        source = e.source();
    }
    let mut line = err.to_string();
    let mut cause = std::error::Error::source(err);
    while let Some(e) = cause {
        line.push_str(": ");
        line.push_str(&e.to_string());
        cause = e.source();
    }
    line
}
