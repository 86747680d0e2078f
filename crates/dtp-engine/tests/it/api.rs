//! A small client of the engine's HTTP API for tests, with the assertions every test
//! shares: error answers are JSON `{code, message}`, timestamps have exactly milliseconds.

use std::time::{Duration, Instant};

use dtp_contract::{AttemptResponse, ErrorBody, TaskResponse, TaskStatus};
use dtp_engine::testing::TestEngine;
use reqwest::{Response, StatusCode};
use serde_json::Value;

use crate::POLL_EVERY;

/// A request that takes longer than this means the engine is stuck.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

pub struct EngineApi {
    client: reqwest::Client,
    base_url: String,
}

impl EngineApi {
    pub fn new(engine: &TestEngine) -> Self {
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .unwrap();
        Self {
            client,
            base_url: engine.base_url().to_owned(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// `POST /tasks` with a JSON body, whatever the answer.
    pub async fn post_task(&self, body: &Value) -> Response {
        self.client
            .post(self.url("/tasks"))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// `POST /tasks/batch` with a JSON body, whatever the answer.
    pub async fn post_batch(&self, body: &Value) -> Response {
        self.client
            .post(self.url("/tasks/batch"))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// `POST /tasks` with a raw body, for bodies that are not valid requests.
    pub async fn post_raw(&self, body: impl Into<String>) -> Response {
        self.client
            .post(self.url("/tasks"))
            .header("content-type", "application/json")
            .body(body.into())
            .send()
            .await
            .unwrap()
    }

    /// Submits a task that must be accepted as new (201).
    pub async fn create_task(&self, body: &Value) -> TaskResponse {
        let response = self.post_task(body).await;
        assert_eq!(response.status(), StatusCode::CREATED, "submitting {body}");
        response.json().await.unwrap()
    }

    /// `GET /tasks/{id}` of a task that must exist.
    pub async fn task(&self, id: i64) -> TaskResponse {
        let response = self
            .client
            .get(self.url(&format!("/tasks/{id}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "reading task {id}");
        response.json().await.unwrap()
    }

    /// `PUT /tasks/{id}/cancel`, whatever the answer.
    pub async fn cancel(&self, id: i64) -> Response {
        self.client
            .put(self.url(&format!("/tasks/{id}/cancel")))
            .send()
            .await
            .unwrap()
    }

    /// `GET /tasks/{id}/attempts` of a task that must exist, oldest first.
    pub async fn attempts(&self, id: i64) -> Vec<AttemptResponse> {
        let response = self
            .client
            .get(self.url(&format!("/tasks/{id}/attempts")))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "reading the attempts of task {id}"
        );
        response.json().await.unwrap()
    }

    /// Polls the task until `done` holds, failing the test after `timeout`.
    pub async fn wait_for(
        &self,
        id: i64,
        what: &str,
        timeout: Duration,
        done: impl Fn(&TaskResponse) -> bool,
    ) -> TaskResponse {
        let deadline = Instant::now() + timeout;
        loop {
            let task = self.task(id).await;
            if done(&task) {
                return task;
            }
            assert!(
                Instant::now() < deadline,
                "task {id} was not {what} after {timeout:?}; last seen: {task:?}"
            );
            tokio::time::sleep(POLL_EVERY).await;
        }
    }

    /// Polls the task until it has `status`, failing the test after `timeout`.
    pub async fn wait_for_status(&self, id: i64, status: TaskStatus, timeout: Duration) -> TaskResponse {
        self.wait_for(id, status.as_str(), timeout, |task| task.status == status)
            .await
    }
}

/// Asserts an error answer: its status, a JSON body, and its stable `code`.
pub async fn expect_error(response: Response, status: StatusCode, code: &str) -> ErrorBody {
    assert_eq!(response.status(), status, "{response:?}");
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(content_type.as_deref(), Some("application/json"));
    let body: Value = response.json().await.unwrap();
    let fields: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(fields, ["code", "message"], "error body {body}");
    let error: ErrorBody = serde_json::from_value(body).unwrap();
    assert_eq!(error.code, code, "{error:?}");
    assert!(!error.message.is_empty());
    error
}

/// Asserts a wire timestamp: RFC 3339 in UTC with exactly three fractional digits.
pub fn assert_wire_timestamp(value: &Value) {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("not a timestamp: {value}"));
    let (seconds, fraction) = text
        .split_once('.')
        .unwrap_or_else(|| panic!("{text} has no fractional seconds"));
    assert_eq!(seconds.len(), "2026-01-02T03:04:05".len(), "{text}");
    let digits = fraction
        .strip_suffix('Z')
        .unwrap_or_else(|| panic!("{text} does not end in Z"));
    assert!(
        digits.len() == 3 && digits.bytes().all(|b| b.is_ascii_digit()),
        "{text}"
    );
    assert!(chrono::DateTime::parse_from_rfc3339(text).is_ok(), "{text}");
}
