//! Live updates over Server-Sent Events: a client watches one web task to its end, follows
//! its tenant's events and resumes with `Last-Event-ID`, and never sees another tenant's.

use dtp_engine::testing::TestEngine;
use serde_json::{json, Value};

use crate::harness::{send, TestTaskPilot};
use crate::keys::key;
use crate::PATIENCE;

/// One event of a stream.
#[derive(Debug, Clone)]
struct Sse {
    id: String,
    event: String,
    data: Value,
}

/// Reads a `text/event-stream` response event by event.
struct SseReader {
    response: reqwest::Response,
    buffer: String,
}

impl SseReader {
    async fn open(http: &reqwest::Client, url: &str, key: &str, last_event_id: Option<&str>) -> Self {
        let mut request = http.get(url).header("authorization", format!("Bearer {key}"));
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200, "{url}");
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        Self {
            response,
            buffer: String::new(),
        }
    }

    /// The next event; `None` when the stream has ended. Comments are skipped.
    async fn next(&mut self) -> Option<Sse> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let (mut id, mut event, mut data) = (String::new(), String::new(), String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id: ") {
                        id = v.to_owned();
                    } else if let Some(v) = line.strip_prefix("event: ") {
                        event = v.to_owned();
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data = v.to_owned();
                    }
                }
                if data.is_empty() {
                    continue; // a comment (keep-alive)
                }
                return Some(Sse {
                    id,
                    event,
                    data: serde_json::from_str(&data).unwrap(),
                });
            }
            let chunk = tokio::time::timeout(PATIENCE, self.response.chunk())
                .await
                .expect("the stream stalled")
                .unwrap()?;
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }
}

struct Tenants {
    _dtp: TestEngine,
    taskpilot: TestTaskPilot,
    http: reqwest::Client,
    ours: String,
    theirs: String,
}

async fn tenants() -> Tenants {
    let dtp = TestEngine::spawn().await;
    let taskpilot = TestTaskPilot::spawn(dtp.base_url(), |c| {
        c.auth_enabled = true;
        c.execution_mirror = true;
    })
    .await;
    let ours = key(&taskpilot, "acme", "tasks:read,tasks:write").await;
    let theirs = key(&taskpilot, "globex", "tasks:read,tasks:write").await;
    Tenants {
        _dtp: dtp,
        taskpilot,
        http: reqwest::Client::new(),
        ours,
        theirs,
    }
}

impl Tenants {
    /// A web task of `key`'s tenant, bound to `scheduler_type`.
    async fn bound(&self, key: &str, scheduler_type: &str) -> i64 {
        let auth = format!("Bearer {key}");
        let (status, body) = send(
            self.http
                .post(self.taskpilot.url("/api/tasks"))
                .header("authorization", &auth)
                .json(&json!({"type": "report"})),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        let id = body["id"].as_i64().unwrap();
        let (status, body) = send(
            self.http
                .post(self.taskpilot.url(&format!("/api/tasks/{id}/scheduler")))
                .header("authorization", &auth)
                .json(&json!({"schedulerType": scheduler_type})),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        id
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_watches_a_task_finish_and_the_stream_ends_with_it() {
    let t = tenants().await;
    let id = t.bound(&t.ours, "demo-fail").await;
    let url = t.taskpilot.url(&format!("/api/tasks/{id}/events"));
    let mut stream = SseReader::open(&t.http, &url, &t.ours, None).await;
    let mut seen = Vec::new();
    while let Some(event) = stream.next().await {
        assert_eq!(event.data["webTaskId"], id);
        assert_eq!(event.data["kind"], event.event.as_str());
        assert_eq!(event.data["cursor"], event.id.as_str());
        assert_eq!(event.data["type"], "demo-fail");
        seen.push(event);
    }
    let kinds: Vec<&str> = seen.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "CREATED",
            "STARTED",
            "RETRY_SCHEDULED",
            "STARTED",
            "RETRY_SCHEDULED",
            "STARTED",
            "FAILED"
        ],
        "the whole history, then the end"
    );
    let last = &seen.last().unwrap().data;
    assert_eq!(
        (last["status"].as_str(), last["attempt"].as_i64()),
        (Some("FAILED"), Some(3))
    );
    assert!(last["error"].is_string());

    // Resumed after an event: only what followed it. Another tenant's task is not found.
    let mut resumed = SseReader::open(&t.http, &url, &t.ours, Some(&seen[4].id)).await;
    let mut rest = Vec::new();
    while let Some(event) = resumed.next().await {
        rest.push(event.event);
    }
    assert_eq!(rest, ["STARTED", "FAILED"]);
    let (status, body) = send(
        t.http
            .get(&url)
            .header("authorization", format!("Bearer {}", t.theirs)),
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (404, Some("WEB_TASK_NOT_FOUND")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tenant_stream_shows_only_its_tenant_and_resumes_after_the_last_event_id() {
    let t = tenants().await;
    let url = t.taskpilot.url("/api/events");
    let mut ours = SseReader::open(&t.http, &url, &t.ours, None).await;
    let mut theirs = SseReader::open(&t.http, &url, &t.theirs, None).await;
    let our_task = t.bound(&t.ours, "demo").await;
    let their_task = t.bound(&t.theirs, "demo").await;

    let mut our_events = Vec::new();
    while our_events.len() < 3 {
        let event = ours.next().await.unwrap();
        assert_eq!(
            event.data["webTaskId"], our_task,
            "only our tenant's tasks: {event:?}"
        );
        our_events.push(event);
    }
    let kinds: Vec<&str> = our_events.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(kinds, ["CREATED", "STARTED", "SUCCEEDED"]);
    let first_of_theirs = theirs.next().await.unwrap();
    assert_eq!(first_of_theirs.data["webTaskId"], their_task);
    drop(ours);

    // A reconnect with the last id it saw gets what came after, and nothing before.
    let later = t.bound(&t.ours, "demo").await;
    let mut resumed = SseReader::open(&t.http, &url, &t.ours, Some(&our_events[2].id)).await;
    let next = resumed.next().await.unwrap();
    assert_eq!(
        (next.data["webTaskId"].as_i64(), next.event.as_str()),
        (Some(later), "CREATED")
    );

    // An id TaskPilot never handed out is refused rather than silently skipping events.
    let (status, body) = send(
        t.http
            .get(&url)
            .header("authorization", format!("Bearer {}", t.ours))
            .header("last-event-id", "nope"),
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (410, Some("CURSOR_EXPIRED")));
    let (status, _) = send(t.http.get(&url)).await;
    assert_eq!(status, 401, "the stream needs a key");
}

/// A web task of tenant `default` bound to scheduler task 1, with `events` applied events
/// (none terminal), written as the follower would.
fn applied_events(database: &service_postgres::testing::TestDatabase, events: i64) {
    use diesel::connection::SimpleConnection;
    database
        .connect()
        .batch_execute(&format!(
            "INSERT INTO web_tasks (id, task_type, payload, status, scheduler_task_id, scheduler_type, bound_at) \
             VALUES (1, 'report', 'null', 'SUBMITTED', 1, 'demo-slow', now()); \
             INSERT INTO task_executions (scheduler_task_id, web_task_id, tenant, status, retry_state, attempt_count) \
             VALUES (1, 1, 'default', 'RUNNING', 'NONE', 1); \
             INSERT INTO execution_events (cursor, scheduler_task_id, kind, status, retry_state, attempt, at) \
             SELECT 'c' || g, 1, 'STARTED', 'RUNNING', 'NONE', 1, now() FROM generate_series(1, {events}) AS g;"
        ))
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_that_falls_behind_is_dropped_and_an_idle_stream_is_kept_alive() {
    use taskpilot_api::event_streams::{EventStreams, StreamScope, STREAM_BUFFER};
    use tokio_util::sync::CancellationToken;

    let dtp = TestEngine::spawn_with(|c| c.worker_enabled = false).await;
    let web = TestTaskPilot::spawn(dtp.base_url(), |_| {}).await;
    let backlog = STREAM_BUFFER as i64 + 50;
    applied_events(&web.database, backlog);
    let url = service_postgres::database::DatabaseUrl::parse(&web.database.url()).unwrap();
    let pool = tokio::task::spawn_blocking(move || {
        service_postgres::database::bootstrap(&url, taskpilot_api::startup::MIGRATIONS, 4)
    })
    .await
    .unwrap()
    .unwrap();
    let streams = EventStreams::new(pool).with_keep_alive(std::time::Duration::from_millis(50));
    let shutdown = CancellationToken::new();

    // Nobody reads this stream while it has more to send than it may hold: it ends, holding
    // what fitted, rather than buffering the rest.
    let mut behind = streams.open(
        StreamScope {
            tenant: "default".into(),
            scheduler_task_id: None,
        },
        0,
        shutdown.clone(),
    );
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !behind.is_closed() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stream never gave up on its reader"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let mut held = 0;
    while let Some(frame) = behind.recv().await {
        assert!(frame.starts_with(b"id: c"), "{frame:?}");
        held += 1;
    }
    assert_eq!(
        held, STREAM_BUFFER,
        "the stream held at most its buffer, then ended"
    );

    // A stream with nothing to send says so with a comment, at its keep-alive interval.
    let mut idle = streams.open(
        StreamScope {
            tenant: "nobody".into(),
            scheduler_task_id: None,
        },
        0,
        shutdown.clone(),
    );
    let first = tokio::time::timeout(PATIENCE, idle.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&first[..], b": keep-alive\n\n");
    shutdown.cancel();
    assert!(idle.recv().await.is_none(), "shutdown ends the stream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applied_events_past_their_retention_are_deleted_and_cannot_be_resumed_from() {
    use diesel::connection::SimpleConnection;
    use taskpilot_api::store::task_executions::delete_events_applied_before;

    let dtp = TestEngine::spawn_with(|c| c.worker_enabled = false).await;
    let web = TestTaskPilot::spawn(dtp.base_url(), |_| {}).await;
    applied_events(&web.database, 10);
    let mut conn = web.database.connect();
    conn.batch_execute("UPDATE execution_events SET applied_at = now() - interval '2 hours' WHERE seq <= 5")
        .unwrap();
    let resume = |id: &'static str| {
        send(
            reqwest::Client::new()
                .get(web.url("/api/events"))
                .header("last-event-id", id),
        )
    };
    // Before: a stream resumes after c3 (the answer streams on; only its status is read).
    let response = reqwest::Client::new()
        .get(web.url("/api/events"))
        .header("last-event-id", "c3")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    drop(response);

    let before = chrono::Utc::now() - chrono::Duration::hours(1);
    assert_eq!(
        delete_events_applied_before(&mut conn, before, 3).unwrap(),
        3,
        "one batch"
    );
    assert_eq!(
        delete_events_applied_before(&mut conn, before, 3).unwrap(),
        2,
        "the rest"
    );
    assert_eq!(
        delete_events_applied_before(&mut conn, before, 3).unwrap(),
        0,
        "the young stay"
    );
    let (status, body) = resume("c3").await;
    assert_eq!((status, body["code"].as_str()), (410, Some("CURSOR_EXPIRED")));
}
