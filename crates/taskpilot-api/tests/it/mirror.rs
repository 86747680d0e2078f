//! The execution mirror: TaskPilot follows the scheduler's change feed and keeps each bound
//! web task's execution, lists by it, answers for tasks the scheduler deleted, survives its own
//! crash and the scheduler's restart without missing or repeating an event, reconciles when
//! the feed no longer has its position, and follows from one process at a time.

use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use dtp_contract::TaskStatus;
use dtp_engine::testing::TestEngine;
use dtp_engine::worker::Retention;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::bind::{free_port, wait_until_up};
use crate::harness::{
    count, send, taskpilot_process, test_config, wait_until_scheduler_idle, TestSystem, TestTaskPilot,
};
use crate::PATIENCE;

/// `GET /api/tasks/{id}` at `base`.
async fn web_task(http: &reqwest::Client, base: &str, id: i64) -> Value {
    let (status, body) = send(http.get(format!("{base}/api/tasks/{id}"))).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Waits until web task `id`'s mirrored execution is in `status`.
async fn wait_for_mirror(http: &reqwest::Client, base: &str, id: i64, status: &str) -> Value {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let task = web_task(http, base, id).await;
        if task["execution"]["status"] == status {
            return task;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never mirrored as {status}: {task}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn bound_web_task(system: &TestSystem, scheduler_type: &str) -> i64 {
    let id = system.create_web_task("report", json!({"n": 1})).await;
    system.bound(id, scheduler_type).await;
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_lists_its_failed_tasks_from_taskpilot_alone() {
    let system = TestSystem::spawn().await;
    let base = system.taskpilot.base_url.clone();
    let unbound = system.create_web_task("report", json!(null)).await;
    assert_eq!(
        web_task(&system.http, &base, unbound).await["execution"],
        Value::Null
    );
    let done = bound_web_task(&system, "demo").await;
    let failed = bound_web_task(&system, "demo-fail").await;

    let succeeded = wait_for_mirror(&system.http, &base, done, "SUCCEEDED").await;
    let execution = &succeeded["execution"];
    assert_eq!(execution["retryState"], "COMPLETED");
    assert_eq!(execution["attemptCount"], 1);
    for field in ["startedAt", "completedAt", "syncedAt"] {
        assert!(execution[field].is_string(), "{field}: {execution}");
    }
    assert_eq!(
        succeeded["status"], "SUBMITTED",
        "the web task's own status stays intent"
    );
    let failed_task = wait_for_mirror(&system.http, &base, failed, "FAILED").await;
    assert_eq!(failed_task["execution"]["retryState"], "EXHAUSTED");
    assert!(failed_task["execution"]["lastError"].is_string());

    // The scheduler is out of the picture: the listing reads TaskPilot's database only.
    let mut dtp = system.dtp;
    dtp.stop().await;
    let (status, page) = send(
        system
            .http
            .get(format!("{base}/api/tasks?executionStatus=FAILED")),
    )
    .await;
    assert_eq!(status, 200, "{page}");
    let ids: Vec<i64> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [failed]);
    let (_, page) = send(system.http.get(format!(
        "{base}/api/tasks?executionStatus=SUCCEEDED&type=report&bound=true"
    )))
    .await;
    assert_eq!(page["items"][0]["id"], done);
    let (status, refused) = send(system.http.get(format!("{base}/api/tasks?executionStatus=DONE"))).await;
    assert_eq!(
        (status, refused["code"].as_str()),
        (400, Some("INVALID_EXECUTION_STATUS"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_the_scheduler_deleted_under_retention_is_answered_from_the_archive() {
    let system = TestSystem::spawn_with(|config| {
        config.worker_enabled = false;
        config.retention = Retention {
            events: Duration::from_secs(3_600),
            finished_tasks: Some(Duration::ZERO),
            interval: Duration::from_secs(3_600),
        };
    })
    .await;
    let base = system.taskpilot.base_url.clone();
    let finished = bound_web_task(&system, "demo").await;
    system.dtp.worker().run_due_tasks().await.unwrap();
    let live = system
        .wait_for_status(finished, TaskStatus::Succeeded, PATIENCE)
        .await;
    assert!(!live.archived);
    wait_for_mirror(&system.http, &base, finished, "SUCCEEDED").await;
    // A task the scheduler loses before it finishes: TaskPilot has no final copy of it.
    let id = bound_web_task(&system, "demo").await;
    let scheduler_id = web_task(&system.http, &base, id).await["schedulerTaskId"]
        .as_i64()
        .unwrap();

    let cleaned = system
        .dtp
        .cleaner()
        .clean(&CancellationToken::new())
        .await
        .unwrap();
    assert!(cleaned.tasks >= 1, "{cleaned:?}");
    let archived = system.execution_view(finished).await;
    assert!(archived.archived, "{archived:?}");
    assert_eq!(
        (archived.status, archived.attempt_count),
        (TaskStatus::Succeeded, 1)
    );
    let (_, archived) = system.execution(finished).await;
    assert!(archived["endToEndLatencyMs"].is_i64(), "{archived}");

    let mut dtp_db = system.dtp.database().connect();
    diesel::sql_query("DELETE FROM tasks WHERE id = $1")
        .bind::<BigInt, _>(scheduler_id)
        .execute(&mut dtp_db)
        .unwrap();
    let status_of_missing = system.execution(id).await;
    assert_eq!(status_of_missing.0, 404, "{}", status_of_missing.1);
    assert_eq!(status_of_missing.1["code"], "SCHEDULER_TASK_MISSING");
}

/// One row per scheduler task: (id, status, retry state, attempts).
fn states(conn: &mut PgConnection, sql: &str) -> Vec<(i64, String, String, i32)> {
    #[derive(QueryableByName)]
    struct State {
        #[diesel(sql_type = BigInt)]
        id: i64,
        #[diesel(sql_type = Text)]
        status: String,
        #[diesel(sql_type = Text)]
        retry_state: String,
        #[diesel(sql_type = diesel::sql_types::Integer)]
        attempt_count: i32,
    }
    diesel::sql_query(sql)
        .load::<State>(conn)
        .unwrap()
        .into_iter()
        .map(|s| (s.id, s.status, s.retry_state, s.attempt_count))
        .collect()
}

const SCHEDULER_STATES: &str = "SELECT id, status, retry_state, attempt_count FROM tasks ORDER BY id";
const MIRRORED_STATES: &str =
    "SELECT scheduler_task_id AS id, status, retry_state, attempt_count FROM task_executions ORDER BY 1";

/// Waits until TaskPilot's mirror holds exactly the scheduler's states.
async fn wait_until_mirror_matches(dtp: &TestEngine, taskpilot: &TestTaskPilot) {
    let deadline = tokio::time::Instant::now() + PATIENCE * 2;
    loop {
        let truth = states(&mut dtp.database().connect(), SCHEDULER_STATES);
        let mirror = states(&mut taskpilot.database.connect(), MIRRORED_STATES);
        if truth == mirror {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the mirror never matched the scheduler:\n scheduler {truth:?}\n mirror    {mirror:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every event applied once: no cursor twice, and as many as the scheduler wrote for the
/// mirrored tasks.
fn assert_each_event_applied_once(dtp: &TestEngine, taskpilot: &TestTaskPilot) {
    let written = count(
        &mut dtp.database().connect(),
        "SELECT count(*) AS n FROM task_events",
    );
    let applied = count(
        &mut taskpilot.database.connect(),
        "SELECT count(*) AS n FROM execution_events",
    );
    assert_eq!(
        applied, written,
        "each of the scheduler's events was applied exactly once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mirror_matches_the_scheduler_after_a_kill_of_taskpilot_and_a_restart_of_the_scheduler() {
    let dtp_port = free_port();
    let mut dtp = TestEngine::spawn_with(|c| c.http_addr = format!("127.0.0.1:{dtp_port}")).await;
    let web = TestTaskPilot::spawn(dtp.base_url(), |_| {}).await; // serves the API; does not follow
    let config = test_config(&web.database, dtp.base_url());
    let port = free_port();
    let spawn_follower = || taskpilot_process(&config, port, &[]);
    let http = reqwest::Client::new();
    let base = web.base_url.clone();
    let mut follower = spawn_follower();
    wait_until_up(&http, &format!("http://127.0.0.1:{port}")).await;

    let submit = |n: usize| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            for i in 0..n {
                let (status, body) =
                    send(http.post(format!("{base}/api/tasks")).json(&json!({"type": "r"}))).await;
                assert_eq!(status, 201, "{body}");
                let id = body["id"].as_i64().unwrap();
                let scheduler_type = if i % 5 == 0 { "demo-fail" } else { "demo" };
                let (status, body) = send(
                    http.post(format!("{base}/api/tasks/{id}/scheduler"))
                        .json(&json!({"schedulerType": scheduler_type})),
                )
                .await;
                assert_eq!(status, 201, "{body}");
            }
        }
    };
    submit(30).await;
    // Mid-stream: the follower dies without a chance to clean up, while tasks keep running.
    follower.kill().unwrap();
    follower.wait().unwrap();
    submit(20).await;
    let mut follower = spawn_follower();
    submit(10).await;
    // The scheduler restarts on the same port; the follower's long-poll fails and resumes.
    dtp.stop().await;
    let dtp = TestEngine::spawn_sharing(&dtp, |c| c.http_addr = format!("127.0.0.1:{dtp_port}")).await;
    submit(10).await;
    wait_until_scheduler_idle(&dtp).await;

    wait_until_mirror_matches(&dtp, &web).await;
    assert_each_event_applied_once(&dtp, &web);
    follower.kill().unwrap();
    follower.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_its_position_expired_the_mirror_is_reconciled_and_follows_from_the_end() {
    let dtp = TestEngine::spawn_with(|c| {
        c.retention = Retention {
            events: Duration::ZERO,
            finished_tasks: None,
            interval: Duration::from_secs(3_600),
        };
    })
    .await;
    let web_db;
    let (done, waiting) = {
        let web = TestTaskPilot::spawn(dtp.base_url(), |c| c.execution_mirror = true).await;
        let http = reqwest::Client::new();
        let system_bind = |kind: &'static str, run_at: Option<&'static str>| {
            let (http, base) = (http.clone(), web.base_url.clone());
            async move {
                let (_, body) =
                    send(http.post(format!("{base}/api/tasks")).json(&json!({"type": "r"}))).await;
                let id = body["id"].as_i64().unwrap();
                let _ = run_at;
                let (status, _) = send(
                    http.post(format!("{base}/api/tasks/{id}/scheduler"))
                        .json(&json!({"schedulerType": kind})),
                )
                .await;
                assert_eq!(status, 201);
                id
            }
        };
        let done = system_bind("demo", None).await;
        wait_for_mirror(&http, &web.base_url, done, "SUCCEEDED").await;
        let waiting = system_bind("demo-slow", None).await;
        wait_for_mirror(&http, &web.base_url, waiting, "RUNNING").await;
        web_db = std::sync::Arc::clone(&web.database);
        (done, waiting)
        // TaskPilot stops here.
    };
    // While it is away, the slow task finishes and retention deletes every event.
    wait_until_scheduler_idle(&dtp).await;
    tokio::time::sleep(Duration::from_millis(50)).await; // Let the stopped follower's last poll end.
    dtp.cleaner().clean(&CancellationToken::new()).await.unwrap();

    let web = TestTaskPilot::spawn_on(web_db, dtp.base_url(), |c| c.execution_mirror = true).await;
    let http = reqwest::Client::new();
    let reconciled = wait_for_mirror(&http, &web.base_url, waiting, "SUCCEEDED").await;
    assert_eq!(reconciled["execution"]["attemptCount"], 1);
    assert_eq!(
        web_task(&http, &web.base_url, done).await["execution"]["status"],
        "SUCCEEDED"
    );
    // And it follows on from the feed's end.
    let (_, body) = send(
        http.post(format!("{}/api/tasks", web.base_url))
            .json(&json!({"type": "r"})),
    )
    .await;
    let later = body["id"].as_i64().unwrap();
    send(
        http.post(format!("{}/api/tasks/{later}/scheduler", web.base_url))
            .json(&json!({"schedulerType": "demo"})),
    )
    .await;
    wait_for_mirror(&http, &web.base_url, later, "SUCCEEDED").await;
}

fn followers_holding_the_lock(taskpilot: &TestTaskPilot) -> i64 {
    count(
        &mut taskpilot.database.connect(),
        "SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND classid = 1413 AND objid = 4654 \
         AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_taskpilot_processes_one_follows_and_the_other_takes_over_when_it_dies() {
    let dtp = TestEngine::spawn().await;
    let first = TestTaskPilot::spawn(dtp.base_url(), |c| c.execution_mirror = true).await;
    let second = TestTaskPilot::spawn_sharing(&first, dtp.base_url(), |c| c.execution_mirror = true).await;
    let http = reqwest::Client::new();
    let bind_one = |base: String| {
        let http = http.clone();
        async move {
            let (_, body) = send(http.post(format!("{base}/api/tasks")).json(&json!({"type": "r"}))).await;
            let id = body["id"].as_i64().unwrap();
            send(
                http.post(format!("{base}/api/tasks/{id}/scheduler"))
                    .json(&json!({"schedulerType": "demo"})),
            )
            .await;
            id
        }
    };
    let id = bind_one(second.base_url.clone()).await;
    wait_for_mirror(&http, &second.base_url, id, "SUCCEEDED").await;
    assert_eq!(followers_holding_the_lock(&first), 1, "one process follows");

    // Whichever follows, stop the first: if it held the lock, the second takes over.
    first.stop();
    let id = bind_one(second.base_url.clone()).await;
    wait_for_mirror(&http, &second.base_url, id, "SUCCEEDED").await;
    assert_eq!(followers_holding_the_lock(&second), 1);
    let mut conn = second.database.connect();
    conn.batch_execute("SELECT 1").unwrap();
}
