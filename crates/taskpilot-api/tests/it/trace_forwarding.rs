//! `X-Request-Id` and W3C trace context reach the scheduler: a recording pass-through
//! proxy between TaskPilot and the real engine shows what DTP receives.

use std::sync::{Arc, Mutex};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use dtp_engine::testing::TestEngine;
use serde_json::json;

use crate::harness::{send, TestTaskPilot};

/// The tracing headers of one request that passed through the proxy.
#[derive(Debug, Clone)]
struct SeenHeaders {
    request_id: Option<String>,
    traceparent: Option<String>,
    tracestate: Option<String>,
}

/// Forwards every request to `target` unchanged and records its tracing headers.
struct RecordingProxy {
    base_url: String,
    seen: Arc<Mutex<Vec<SeenHeaders>>>,
    handle: actix_web::dev::ServerHandle,
}

impl RecordingProxy {
    fn start(target: &str) -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let state = web::Data::new((target.to_owned(), seen.clone(), reqwest::Client::new()));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .default_service(web::to(forward))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Self {
            base_url: format!("http://127.0.0.1:{port}"),
            seen,
            handle,
        }
    }

    fn seen(&self) -> Vec<SeenHeaders> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for RecordingProxy {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

type ProxyState = (String, Arc<Mutex<Vec<SeenHeaders>>>, reqwest::Client);

async fn forward(req: HttpRequest, body: web::Bytes, state: web::Data<ProxyState>) -> HttpResponse {
    let (target, seen, client) = state.get_ref();
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    seen.lock().unwrap().push(SeenHeaders {
        request_id: header("x-request-id"),
        traceparent: header("traceparent"),
        tracestate: header("tracestate"),
    });
    let method = reqwest::Method::from_bytes(req.method().as_str().as_bytes()).unwrap();
    let response = client
        .request(method, format!("{target}{}", req.uri()))
        .header("content-type", "application/json")
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    let status = actix_web::http::StatusCode::from_u16(response.status().as_u16()).unwrap();
    let body = response.bytes().await.unwrap();
    HttpResponse::build(status)
        .content_type("application/json")
        .body(body.to_vec())
}

const CALLER_TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN_ID: &str = "00f067aa0ba902b7";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_id_and_trace_context_are_forwarded_to_the_scheduler() {
    let dtp = TestEngine::spawn_with(|c| c.worker_enabled = false).await;
    let proxy = RecordingProxy::start(dtp.base_url());
    let taskpilot = TestTaskPilot::spawn(&proxy.base_url, |_| {}).await;
    let http = reqwest::Client::new();
    let (status, created) = send(
        http.post(taskpilot.url("/api/tasks"))
            .json(&json!({"type": "report"})),
    )
    .await;
    assert_eq!(status, 201);
    let id = created["id"].as_i64().unwrap();

    // A caller in a trace: the scheduler sees the same request id and trace, with
    // TaskPilot's own span as the parent, and the caller's tracestate unchanged.
    let response = http
        .post(taskpilot.url(&format!("/api/tasks/{id}/scheduler")))
        .header("x-request-id", "bind-req-7")
        .header("traceparent", format!("00-{CALLER_TRACE_ID}-{CALLER_SPAN_ID}-01"))
        .header("tracestate", "congo=t61rcWkgMzE")
        .json(&json!({"schedulerType": "demo"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["x-request-id"], "bind-req-7");
    let seen = proxy.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].request_id.as_deref(), Some("bind-req-7"));
    let traceparent = seen[0].traceparent.clone().unwrap();
    let fields: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(fields.len(), 4, "{traceparent}");
    assert_eq!(fields[0], "00");
    assert_eq!(fields[1], CALLER_TRACE_ID);
    assert_ne!(
        fields[2], CALLER_SPAN_ID,
        "TaskPilot's span is the scheduler call's parent"
    );
    assert_eq!(fields[3], "01");
    assert_eq!(seen[0].tracestate.as_deref(), Some("congo=t61rcWkgMzE"));

    // A caller without a trace: TaskPilot starts one, and both scheduler calls of one
    // request carry the same request id and trace.
    let (status, _) =
        send(http.get(taskpilot.url(&format!("/api/tasks/{id}/execution?include=attempts")))).await;
    assert_eq!(status, 200);
    let seen = proxy.seen();
    assert_eq!(seen.len(), 3, "{seen:?}");
    let (read_task, read_attempts) = (&seen[1], &seen[2]);
    assert_eq!(read_task.request_id.as_ref().unwrap().len(), 32);
    assert_eq!(read_task.request_id, read_attempts.request_id);
    assert_eq!(read_task.traceparent, read_attempts.traceparent);
    let generated = read_task.traceparent.clone().unwrap();
    assert_eq!(generated.len(), 55, "{generated}");
    assert!(!generated.contains(CALLER_TRACE_ID));
    assert_eq!(read_task.tracestate, None);
}
