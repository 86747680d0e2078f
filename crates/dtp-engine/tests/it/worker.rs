//! The worker: claims only due tasks, never runs a task twice when several engines claim
//! from one database, keeps a type's concurrency limit across engines, and stops (or fences
//! off) the attempt of a task canceled mid-run.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use diesel::RunQueryDsl;
use dtp_contract::{RetryState, TaskStatus};
use dtp_engine::config::EngineConfig;
use dtp_engine::startup::EngineBuilder;
use dtp_engine::testing::TestEngine;
use reqwest::StatusCode;
use serde_json::json;
use tokio::sync::Semaphore;

use crate::api::EngineApi;
use crate::gates::{Gate, Gated, GatedLimited, GATED_LIMIT, NO_HEARTBEAT_IN_TIME};
use crate::{sql, stepped, wait_until, PATIENCE, POLL_EVERY};

/// Tasks shared out between the racing workers.
const CONTESTED_TASKS: usize = 300;
/// Submissions in flight at once while filling the queue.
const SUBMITTERS: usize = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_is_not_claimed_before_its_run_at() {
    let dtp = TestEngine::spawn_with(stepped).await;
    let api = EngineApi::new(&dtp);
    let later = Utc::now() + chrono::Duration::hours(1);
    let soon = Utc::now() + chrono::Duration::milliseconds(300);
    let due_later = api.create_task(&json!({"type": "demo", "runAt": later})).await;
    let due_soon = api.create_task(&json!({"type": "demo", "runAt": soon})).await;
    let due_now = api.create_task(&json!({"type": "demo"})).await;
    assert!(due_later.scheduled_for > Utc::now());

    let mut ran = dtp.worker().run_due_tasks().await.unwrap();
    assert_eq!(api.task(due_now.id).await.status, TaskStatus::Succeeded);
    let deadline = Instant::now() + PATIENCE;
    while api.task(due_soon.id).await.status == TaskStatus::Pending {
        assert!(Instant::now() < deadline, "the task due soon never ran");
        tokio::time::sleep(POLL_EVERY).await;
        ran += dtp.worker().run_due_tasks().await.unwrap();
    }

    assert_eq!(ran, 2);
    let soon_attempts = api.attempts(due_soon.id).await;
    assert_eq!(soon_attempts.len(), 1);
    assert!(
        soon_attempts[0].started_at >= due_soon.scheduled_for,
        "{soon_attempts:?}"
    );
    let untouched = api.task(due_later.id).await;
    assert_eq!(untouched, due_later, "a task due in an hour must not be touched");
    assert!(api.attempts(due_later.id).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engines_claiming_from_one_database_never_run_a_task_twice() {
    let api_node = TestEngine::spawn_with(stepped).await;
    let api = Arc::new(EngineApi::new(&api_node));
    let in_flight = Arc::new(Semaphore::new(SUBMITTERS));
    let submissions: Vec<_> = (0..CONTESTED_TASKS)
        .map(|n| {
            let (api, in_flight) = (Arc::clone(&api), Arc::clone(&in_flight));
            tokio::spawn(async move {
                let _permit = in_flight.acquire().await.unwrap();
                api.create_task(&json!({"type": "demo", "payload": {"n": n}}))
                    .await
            })
        })
        .collect();
    for submission in submissions {
        submission.await.unwrap();
    }

    let small = |config: &mut EngineConfig| config.worker.concurrency = 2;
    let workers = tokio::join!(
        TestEngine::spawn_sharing(&api_node, small),
        TestEngine::spawn_sharing(&api_node, small),
        TestEngine::spawn_sharing(&api_node, small),
    );
    let db = api_node.database();
    wait_until("every task succeeded", PATIENCE, || {
        sql::count_tasks_in(db, "SUCCEEDED") == CONTESTED_TASKS as i64
    })
    .await;

    assert_eq!(sql::count_tasks(db), CONTESTED_TASKS as i64);
    let attempts = sql::all_attempt_rows(db);
    assert_eq!(attempts.len(), CONTESTED_TASKS, "one attempt per task");
    let attempted: BTreeSet<i64> = attempts.iter().map(|a| a.task_id).collect();
    assert_eq!(attempted.len(), CONTESTED_TASKS, "no task attempted twice");
    assert!(attempts
        .iter()
        .all(|a| a.attempt == 1 && a.outcome.as_deref() == Some("SUCCEEDED")));
    for id in &attempted {
        assert_eq!(sql::task_row(db, *id).attempt_count, 1);
    }
    let engines: BTreeSet<&str> = [&workers.0, &workers.1, &workers.2]
        .iter()
        .map(|engine| engine.worker().id())
        .collect();
    let claimers: BTreeSet<&str> = attempts.iter().map(|a| a.worker_id.as_str()).collect();
    assert!(claimers.is_subset(&engines), "{claimers:?} not among {engines:?}");
    assert!(
        claimers.len() > 1,
        "only {claimers:?} claimed; the race did not happen"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_of_a_running_task_stops_its_attempt() {
    let gate = Gate::default();
    let dtp = TestEngine::spawn_with_types(
        |config| config.worker.lease = NO_HEARTBEAT_IN_TIME,
        |engine| engine.register(Gated(gate.clone())),
    )
    .await;
    let api = EngineApi::new(&dtp);
    let task = api.create_task(&json!({"type": "gated"})).await;
    gate.wait_until("the attempt started", |g| g.running() == 1).await;

    assert_eq!(api.cancel(task.id).await.status(), StatusCode::NO_CONTENT);
    let canceled = api.task(task.id).await;

    assert_eq!(canceled.status, TaskStatus::Canceled);
    assert_eq!(canceled.retry_state, RetryState::Canceled);
    assert!(canceled.completed_at.is_some());
    let attempts = api.attempts(task.id).await;
    assert_eq!(attempts.len(), 1);
    assert!(attempts[0].finished_at.is_some());
    assert_eq!(attempts[0].outcome.as_deref(), Some("CANCELED"));
    // The handler is told to stop (no heartbeat comes in time to tell it), and its end is discarded.
    gate.wait_until("the handler was told to stop", |g| g.stopped() == 1)
        .await;
    wait_until("the attempt ended", PATIENCE, || {
        dtp.worker().attempts_in_flight() == 0
    })
    .await;
    assert_eq!(api.task(task.id).await, canceled);
    assert_eq!(api.attempts(task.id).await, attempts);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_through_another_node_stops_the_runner_at_once() {
    let gate = Gate::default();
    let runner = TestEngine::spawn_with_types(
        |config| config.worker.lease = NO_HEARTBEAT_IN_TIME,
        |engine| engine.register(Gated(gate.clone())),
    )
    .await;
    let api_node = TestEngine::spawn_sharing_with_types(&runner, stepped, |engine| {
        engine.register(Gated(Gate::default()))
    })
    .await;
    let (on_runner, on_api_node) = (EngineApi::new(&runner), EngineApi::new(&api_node));
    let task = on_runner.create_task(&json!({"type": "gated"})).await;
    gate.wait_until("the attempt started", |g| g.running() == 1).await;

    // The runner learns of it through the database's notification: its next heartbeat is
    // minutes away. Its late end is discarded.
    assert_eq!(on_api_node.cancel(task.id).await.status(), StatusCode::NO_CONTENT);
    let canceled = on_api_node.task(task.id).await;
    let attempts = on_api_node.attempts(task.id).await;
    assert_eq!(canceled.status, TaskStatus::Canceled);
    assert_eq!(attempts[0].outcome.as_deref(), Some("CANCELED"));
    gate.wait_until("the runner's handler was told to stop", |g| g.stopped() == 1)
        .await;
    wait_until("the runner's attempt ended", PATIENCE, || {
        runner.worker().attempts_in_flight() == 0
    })
    .await;

    assert_eq!(on_runner.task(task.id).await, canceled);
    assert_eq!(on_runner.attempts(task.id).await, attempts);
}

/// Tasks of the limited handler type, and of an unlimited type submitted beside them.
const LIMITED_TASKS: usize = 9;
const UNLIMITED_TASKS: usize = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_type_s_limit_holds_across_three_engines_while_other_types_run() {
    let gate = Gate::default();
    let limited = |engine: EngineBuilder| engine.register(GatedLimited(gate.clone()));
    // Each engine has fewer slots than the limit: more than one must claim to reach it.
    let slots = |config: &mut EngineConfig| config.worker.concurrency = GATED_LIMIT as usize - 1;
    let first = TestEngine::spawn_with_types(slots, limited).await;
    let (second, third) = tokio::join!(
        TestEngine::spawn_sharing_with_types(&first, slots, limited),
        TestEngine::spawn_sharing_with_types(&first, slots, limited),
    );
    let api = EngineApi::new(&first);
    let mut tasks: Vec<_> = (0..LIMITED_TASKS)
        .map(|_| json!({"type": "gated-limited"}))
        .collect();
    tasks.extend((0..UNLIMITED_TASKS).map(|_| json!({"type": "demo"})));
    let response = api.post_batch(&json!({"tasks": tasks})).await;
    assert_eq!(response.status(), StatusCode::CREATED);

    gate.wait_until("the limit's worth of attempts run", |g| {
        g.running() == GATED_LIMIT as usize
    })
    .await;
    let db = first.database();
    wait_until("the unlimited tasks ran beside the held ones", PATIENCE, || {
        sql::count_tasks_in(db, "SUCCEEDED") == UNLIMITED_TASKS as i64
    })
    .await;
    let mut released = 0;
    while released < LIMITED_TASKS {
        let round = (GATED_LIMIT as usize).min(LIMITED_TASKS - released);
        gate.wait_until("the limit's worth of attempts run", |g| g.running() == round)
            .await;
        gate.release(round);
        released += round;
        gate.wait_until("the round ended", |g| g.started() - g.running() >= released)
            .await;
    }
    wait_until("every task succeeded", PATIENCE, || {
        sql::count_tasks_in(db, "SUCCEEDED") == (LIMITED_TASKS + UNLIMITED_TASKS) as i64
    })
    .await;
    assert_eq!(
        gate.max_running(),
        GATED_LIMIT as usize,
        "never more than the limit at once"
    );
    assert_eq!(gate.started(), LIMITED_TASKS, "each limited task ran once");
    let engines: BTreeSet<&str> = [&first, &second, &third]
        .iter()
        .map(|e| e.worker().id())
        .collect();
    let claimers: BTreeSet<String> = sql::all_attempt_rows(db)
        .into_iter()
        .map(|a| a.worker_id)
        .collect();
    assert!(
        claimers.len() > 1,
        "only {claimers:?} claimed; the race did not happen"
    );
    assert!(claimers.iter().all(|c| engines.contains(c.as_str())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_attempt_ends_is_guarded_attempt_by_attempt() {
    use dtp_engine::domain::{AttemptOutcome, TaskState};
    use dtp_engine::store::tasks::{claim_due_tasks, finish_attempts, AttemptEnd, LeaseGuard};

    let dtp = TestEngine::spawn_with(stepped).await;
    let api = EngineApi::new(&dtp);
    let ids: Vec<i64> = submit_demo_tasks(&api, 3).await;
    let mut conn = dtp.database().connect();
    let claimed = claim_due_tasks(
        &mut conn,
        "batch-test",
        10,
        Duration::from_secs(60),
        TaskStatus::Running,
    )
    .unwrap();
    assert_eq!(claimed.iter().map(|c| c.id).collect::<Vec<_>>(), ids);
    // The third task is canceled while its attempt runs: that attempt is fenced off.
    assert_eq!(api.cancel(ids[2]).await.status(), StatusCode::NO_CONTENT);

    let succeeded = TaskState::new(TaskStatus::Succeeded, RetryState::Completed);
    let retry = TaskState::new(TaskStatus::Pending, RetryState::RetryScheduled);
    let end = |i: usize, next: TaskState, outcome, error: Option<&str>, retry_in| AttemptEnd {
        task_id: claimed[i].id,
        lease_token: claimed[i].lease_token,
        next,
        outcome,
        error: error.map(str::to_owned),
        retry_in,
        result: None,
        lease_secret: None,
    };
    let ends = vec![
        end(0, succeeded, AttemptOutcome::Succeeded, None, None),
        end(
            1,
            retry,
            AttemptOutcome::Failed,
            Some("boom"),
            Some(Duration::from_secs(30)),
        ),
        end(2, succeeded, AttemptOutcome::Succeeded, None, None),
    ];
    let held = finish_attempts(&mut conn, &ends, LeaseGuard::Held).unwrap();
    assert_eq!(
        held.into_iter().collect::<BTreeSet<_>>(),
        BTreeSet::from([claimed[0].lease_token, claimed[1].lease_token])
    );

    let first = api.task(ids[0]).await;
    assert_eq!(
        (first.status, first.retry_state),
        (TaskStatus::Succeeded, RetryState::Completed)
    );
    assert!(first.completed_at.is_some());
    let second = api.task(ids[1]).await;
    assert_eq!(second.status, TaskStatus::Pending);
    assert_eq!(second.last_error.as_deref(), Some("boom"));
    assert!(second.scheduled_for > Utc::now() + chrono::Duration::seconds(20));
    assert_eq!(
        api.task(ids[2]).await.status,
        TaskStatus::Canceled,
        "a fenced-off end changes nothing"
    );
    let outcomes: Vec<Option<String>> = ids
        .iter()
        .map(|id| sql::attempt_rows(dtp.database(), *id)[0].outcome.clone())
        .collect();
    assert_eq!(
        outcomes,
        [
            Some("SUCCEEDED".into()),
            Some("FAILED".into()),
            Some("CANCELED".into())
        ]
    );
    // Written ends are not written twice.
    assert!(finish_attempts(&mut conn, &ends, LeaseGuard::Held)
        .unwrap()
        .is_empty());
}

/// Submits `n` demo tasks one after another; returns their ids in order.
async fn submit_demo_tasks(api: &EngineApi, n: usize) -> Vec<i64> {
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        ids.push(api.create_task(&json!({"type": "demo"})).await.id);
    }
    ids
}

/// A poll interval no test waits for: whatever runs in time was woken by something else.
const NEVER_POLL: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_worker_wakes_when_a_retry_or_run_at_falls_due_not_at_its_next_poll() {
    let dtp = TestEngine::spawn_with(|c: &mut EngineConfig| {
        c.worker.poll_interval = NEVER_POLL;
        c.worker.retry.base = Duration::from_millis(200);
        c.worker.retry.max = Duration::from_millis(400);
    })
    .await;
    let api = EngineApi::new(&dtp);
    let later = api
        .create_task(&json!({"type": "demo", "runAt": Utc::now() + chrono::Duration::milliseconds(400)}))
        .await;
    let retried = api
        .create_task(&json!({"type": "demo-fail", "payload": {"failTimes": 1}, "maxAttempts": 2}))
        .await;

    let started = Instant::now();
    let later = api
        .wait_for_status(later.id, TaskStatus::Succeeded, PATIENCE)
        .await;
    let retried = api
        .wait_for_status(retried.id, TaskStatus::Succeeded, PATIENCE)
        .await;
    assert!(started.elapsed() < NEVER_POLL / 4, "took {:?}", started.elapsed());
    assert_eq!(retried.attempt_count, 2);
    let attempts = api.attempts(later.id).await;
    assert!(attempts[0].started_at >= later.scheduled_for, "{attempts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_takes_the_next_task_while_the_last_attempt_s_end_is_still_being_written() {
    let gate = Gate::default();
    let dtp = TestEngine::spawn_with_types(
        |config| {
            config.worker.concurrency = 1;
            config.worker.lease = NO_HEARTBEAT_IN_TIME;
        },
        |engine| engine.register(Gated(gate.clone())),
    )
    .await;
    let api = EngineApi::new(&dtp);
    let first = api.create_task(&json!({"type": "gated"})).await;
    gate.wait_until("the first attempt started", |g| g.running() == 1)
        .await;
    // The first task's row held in another transaction: its end cannot be written yet.
    let mut holder = dtp.database().connect();
    diesel::sql_query("BEGIN").execute(&mut holder).unwrap();
    diesel::sql_query("SELECT id FROM tasks WHERE id = $1 FOR UPDATE")
        .bind::<diesel::sql_types::BigInt, _>(first.id)
        .execute(&mut holder)
        .unwrap();
    let second = api.create_task(&json!({"type": "gated"})).await;

    gate.release(1);
    gate.wait_until("the second attempt started in the only slot", |g| {
        g.started() == 2
    })
    .await;
    assert_eq!(
        sql::task_row(dtp.database(), first.id).status,
        "RUNNING",
        "the first attempt's end is still waiting for its write"
    );
    assert_eq!(gate.max_running(), 1, "one slot: never two handlers at once");

    diesel::sql_query("COMMIT").execute(&mut holder).unwrap();
    gate.release(1);
    for id in [first.id, second.id] {
        wait_until("both tasks succeeded", PATIENCE, || {
            sql::task_row(dtp.database(), id).status == "SUCCEEDED"
        })
        .await;
    }
    assert_eq!(api.attempts(first.id).await.len(), 1);
    assert_eq!(api.attempts(second.id).await.len(), 1);
}
