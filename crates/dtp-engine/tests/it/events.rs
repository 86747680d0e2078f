//! The change feed: every change of a task is an event, in order; a reader that follows
//! `nextCursor` misses none, even when transactions commit out of the order their positions
//! were drawn in; retention deletes old events and finished tasks in batches.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use dtp_contract::{ChangeEvent, EventKind, EventPage, RetryState, TaskBatchResponse, TaskStatus};
use dtp_engine::testing::TestEngine;
use dtp_engine::worker::Retention;
use reqwest::StatusCode;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::api::{expect_error, EngineApi};
use crate::sql::count;
use crate::{sql, stepped, PATIENCE};

impl EngineApi {
    /// `GET /events` with the given query, which must succeed.
    async fn events(&self, query: &str) -> EventPage {
        let response = self
            .client()
            .get(self.url(&format!("/events?{query}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "GET /events?{query}");
        response.json().await.unwrap()
    }

    /// Follows the feed from `after` until it has delivered `count` events, which must come
    /// soon (a transaction open anywhere on the server may hold them back for a moment).
    async fn follow(&self, after: Option<&str>, count: usize) -> (Vec<ChangeEvent>, String) {
        let deadline = Instant::now() + PATIENCE;
        let mut events = Vec::new();
        let mut cursor = after.map(str::to_owned);
        while events.len() < count {
            assert!(
                Instant::now() < deadline,
                "only {} of {count} events came: {events:?}",
                events.len()
            );
            let query = match &cursor {
                Some(c) => format!("after={c}&limit=1000&waitMs=1000"),
                None => "limit=1000&waitMs=1000".to_owned(),
            };
            let page = self.events(&query).await;
            events.extend(page.events);
            cursor = Some(page.next_cursor);
        }
        assert_eq!(events.len(), count, "no more events than expected: {events:?}");
        (events, cursor.unwrap_or_default())
    }
}

fn kinds_by_task(events: &[ChangeEvent]) -> HashMap<i64, Vec<EventKind>> {
    let mut by_task: HashMap<i64, Vec<EventKind>> = HashMap::new();
    for e in events {
        by_task.entry(e.task_id).or_default().push(e.kind);
    }
    by_task
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_of_a_task_is_an_event_in_the_order_it_happened() {
    let dtp = TestEngine::spawn_with(stepped).await;
    let api = EngineApi::new(&dtp);
    let done = api.create_task(&json!({"type": "demo"})).await;
    let failing = api
        .create_task(&json!({"type": "demo-fail", "maxAttempts": 2}))
        .await;
    let canceled = api
        .create_task(&json!({"type": "demo", "runAt": "2099-01-01T00:00:00Z"}))
        .await;
    let lost = api.create_task(&json!({"type": "demo", "maxAttempts": 1})).await;
    assert_eq!(api.cancel(canceled.id).await.status(), StatusCode::NO_CONTENT);
    sql::claim_as_lost_worker(dtp.database(), lost.id, "ghost", -1_000);
    assert_eq!(dtp.rescuer().rescue_expired_leases().await.unwrap(), 1);
    let deadline = Instant::now() + PATIENCE;
    while api.task(failing.id).await.status != TaskStatus::Failed {
        assert!(Instant::now() < deadline, "demo-fail never failed");
        dtp.worker().run_due_tasks().await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    let (events, _) = api.follow(None, 13).await;
    let by_task = kinds_by_task(&events);
    use EventKind::*;
    assert_eq!(by_task[&done.id], [Created, Started, Succeeded]);
    assert_eq!(
        by_task[&failing.id],
        [Created, Started, RetryScheduled, Started, Failed]
    );
    assert_eq!(by_task[&canceled.id], [Created, Canceled]);
    assert_eq!(by_task[&lost.id], [Created, Started, Lost]);

    let last_of = |id: i64| events.iter().rfind(|e| e.task_id == id).unwrap();
    let failed = last_of(failing.id);
    assert_eq!(
        (failed.status, failed.retry_state, failed.attempt),
        (TaskStatus::Failed, RetryState::Exhausted, 2)
    );
    assert!(failed.error.is_some(), "a failure carries its error");
    assert_eq!(failed.task_type, "demo-fail");
    let lost_event = last_of(lost.id);
    assert_eq!(
        (lost_event.status, lost_event.retry_state),
        (TaskStatus::Failed, RetryState::Exhausted),
        "a lost last attempt fails the task"
    );
    assert!(lost_event.error.as_deref().unwrap().contains("ghost"));
    let succeeded = last_of(done.id);
    assert_eq!((succeeded.attempt, succeeded.error.as_deref()), (1, None));
    let cursors: HashSet<&str> = events.iter().map(|e| e.cursor.as_str()).collect();
    assert_eq!(cursors.len(), events.len(), "every event has a cursor of its own");

    // Read from an event's cursor: what follows it, nothing before.
    let from_third = api.events(&format!("after={}", events[2].cursor)).await;
    assert_eq!(from_third.events, events[3..]);
    // Filtered by task type.
    let only_fail = api.events("types=demo-fail,nosuch").await;
    assert!(only_fail.events.iter().all(|e| e.task_type == "demo-fail"));
    assert_eq!(only_fail.events.len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_released_at_shutdown_is_an_event_and_not_counted() {
    let mut dtp = TestEngine::spawn().await;
    let api = EngineApi::new(&dtp);
    let task = api
        .create_task(&json!({"type": "demo-slow", "payload": {"sleepMs": 60000}}))
        .await;
    api.wait_for_status(task.id, TaskStatus::Running, PATIENCE).await;
    dtp.stop().await; // Releases the unfinished attempt.
    let after = TestEngine::spawn_sharing(&dtp, stepped).await;

    let (events, _) = EngineApi::new(&after).follow(None, 3).await;
    let kinds = kinds_by_task(&events);
    assert_eq!(
        kinds[&task.id],
        [EventKind::Created, EventKind::Started, EventKind::Released]
    );
    let released = events.last().unwrap();
    assert_eq!(
        (released.status, released.attempt),
        (TaskStatus::Pending, 0),
        "a released attempt is not counted"
    );
}

/// Inserts a task in a transaction of its own on `conn`, left open.
fn insert_in_open_transaction(conn: &mut PgConnection) {
    conn.batch_execute(
        "BEGIN; INSERT INTO tasks (task_type, payload, max_attempts, timeout_ms) VALUES ('demo', '{}', 1, 1000)",
    )
    .unwrap();
}

#[derive(QueryableByName)]
struct Position {
    #[diesel(sql_type = BigInt)]
    position: i64,
}

/// A naive reader: every event after the highest position it has seen.
fn naive_read(conn: &mut PgConnection, after: i64) -> Vec<i64> {
    diesel::sql_query("SELECT position FROM task_events WHERE position > $1 ORDER BY position")
        .bind::<BigInt, _>(after)
        .load::<Position>(conn)
        .unwrap()
        .into_iter()
        .map(|p| p.position)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_that_commits_after_a_later_positioned_one_is_not_skipped() {
    let dtp = TestEngine::spawn_with(stepped).await;
    let api = EngineApi::new(&dtp);
    let start = api.events("after=latest").await.next_cursor;
    let mut early = dtp.database().connect();
    let mut late = dtp.database().connect();
    // `early` draws the lower position but commits last.
    insert_in_open_transaction(&mut early);
    insert_in_open_transaction(&mut late);
    late.batch_execute("COMMIT").unwrap();

    let mut reader = dtp.database().connect();
    let naive_first = naive_read(&mut reader, 0);
    assert_eq!(
        naive_first.len(),
        1,
        "a naive reader sees the later position first"
    );
    let held = api.events(&format!("after={start}")).await;
    assert!(
        held.events.is_empty(),
        "the feed holds back what an open transaction may precede"
    );

    early.batch_execute("COMMIT").unwrap();
    let naive_then = naive_read(&mut reader, naive_first[0]);
    assert!(
        naive_then.is_empty(),
        "and never sees the one that committed late"
    );
    let (events, _) = api.follow(Some(&held.next_cursor), 2).await;
    assert_eq!(events.len(), 2, "the feed delivers both: {events:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_following_the_feed_under_concurrent_writers_loses_and_repeats_nothing() {
    const WRITERS: usize = 8;
    const TASKS_PER_WRITER: usize = 40;
    let dtp = TestEngine::spawn_with(|config| config.worker.concurrency = 8).await;
    // The reader follows the feed live, long-polling, while the writers write, until it has
    // as many events as the table holds once they are done.
    let (expect, mut expected) = tokio::sync::watch::channel(None::<usize>);
    let reader = {
        let api = EngineApi::new(&dtp);
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut cursor: Option<String> = None;
            let deadline = Instant::now() + PATIENCE * 2;
            loop {
                if expected.borrow_and_update().is_some_and(|n| seen.len() >= n) {
                    return seen;
                }
                assert!(
                    Instant::now() < deadline,
                    "the reader got only {} events",
                    seen.len()
                );
                let query = match &cursor {
                    Some(c) => format!("after={c}&limit=37&waitMs=200"),
                    None => "limit=37&waitMs=200".to_owned(),
                };
                let page = api.events(&query).await;
                seen.extend(page.events);
                cursor = Some(page.next_cursor);
            }
        })
    };
    // Writers: tasks through the API (run by the engine's worker), and transactions of
    // their own in SQL that hold their positions while others commit.
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let url = dtp.base_url().to_owned();
        let database = dtp.database().url();
        writers.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            for i in 0..TASKS_PER_WRITER {
                if (w + i) % 3 == 0 {
                    let db = database.clone();
                    tokio::task::spawn_blocking(move || {
                        let mut conn = PgConnection::establish(&db).unwrap();
                        insert_in_open_transaction(&mut conn);
                        conn.batch_execute(&format!("SELECT pg_sleep({}); COMMIT", (i % 4) as f64 / 1000.0))
                            .unwrap();
                    })
                    .await
                    .unwrap();
                } else {
                    let response = client
                        .post(format!("{url}/tasks"))
                        .json(&json!({"type": "demo"}))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(response.status(), StatusCode::CREATED);
                }
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    crate::wait_until("every task has run", PATIENCE, || {
        sql::count_tasks_in(dtp.database(), "SUCCEEDED") == (WRITERS * TASKS_PER_WRITER) as i64
    })
    .await;
    let mut conn = dtp.database().connect();
    let stored: Vec<i64> = naive_read(&mut conn, 0);
    expect.send(Some(stored.len())).unwrap();
    let seen = reader.await.unwrap();
    let cursors: HashSet<&str> = seen.iter().map(|e| e.cursor.as_str()).collect();
    assert_eq!(cursors.len(), seen.len(), "no event was delivered twice");
    assert_eq!(seen.len(), stored.len(), "every stored event was delivered");
    for (task, kinds) in kinds_by_task(&seen) {
        assert_eq!(kinds[0], EventKind::Created, "task {task}: {kinds:?}");
        assert_eq!(
            kinds,
            [EventKind::Created, EventKind::Started, EventKind::Succeeded],
            "task {task}: its events once each, in order"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_from_latest_is_woken_by_a_new_event() {
    let dtp = TestEngine::spawn_with(stepped).await;
    let api = EngineApi::new(&dtp);
    let first = api.create_task(&json!({"type": "demo"})).await;
    let latest = api.events("after=latest").await;
    // Transaction ids are the server's: a transaction open in another test's database may
    // hold the first task's event back when `latest` is taken, and let it go by the read.
    assert!(
        latest.events.iter().all(|e| e.task_id == first.id),
        "latest starts after what exists: {:?}",
        latest.events
    );

    let waiting = {
        let url = api.url(&format!("/events?after={}&waitMs=10000", latest.next_cursor));
        tokio::spawn(async move {
            let started = Instant::now();
            let page: EventPage = reqwest::get(url).await.unwrap().json().await.unwrap();
            (page, started.elapsed())
        })
    };
    // Started by an engine handler in this process: the claim wakes the waiting reader.
    let other = api.create_task(&json!({"type": "demo"})).await;
    let (page, waited) = waiting.await.unwrap();
    assert!(
        waited < Duration::from_secs(10),
        "woken by the event, not the deadline"
    );
    // `latest` is after every event final then: the first task's, if a transaction open
    // elsewhere on the server still held it back, comes after it too, but nothing else.
    let mut seen: Vec<(i64, EventKind)> = page.events.iter().map(|e| (e.task_id, e.kind)).collect();
    let mut cursor = page.next_cursor;
    let deadline = Instant::now() + PATIENCE;
    while !seen.contains(&(other.id, EventKind::Created)) {
        assert!(Instant::now() < deadline, "never saw task {}: {seen:?}", other.id);
        let next = api.events(&format!("after={cursor}&waitMs=1000")).await;
        seen.extend(next.events.iter().map(|e| (e.task_id, e.kind)));
        cursor = next.next_cursor;
    }
    assert!(
        seen.iter()
            .all(|&(task, kind)| kind == EventKind::Created && task <= other.id),
        "{seen:?}"
    );

    // An empty long-poll answers at its deadline with a cursor to go on from.
    let quiet = api.events(&format!("after={cursor}&waitMs=50")).await;
    assert!(quiet.events.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_on_one_engine_is_woken_by_changes_made_on_another() {
    let reading = TestEngine::spawn_with(stepped).await;
    let running = TestEngine::spawn_sharing(&reading, stepped).await;
    let task = EngineApi::new(&running)
        .create_task(&json!({"type": "demo"}))
        .await;
    let api = EngineApi::new(&reading);
    let (_, cursor) = api.follow(None, 1).await;

    let waiting = {
        let url = api.url(&format!("/events?after={cursor}&waitMs=10000"));
        tokio::spawn(async move {
            reqwest::get(url)
                .await
                .unwrap()
                .json::<EventPage>()
                .await
                .unwrap()
        })
    };
    running.worker().run_due_tasks().await.unwrap();
    let page = waiting.await.unwrap();
    assert_eq!(page.events[0].task_id, task.id);
    assert_eq!(page.events[0].kind, EventKind::Started);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_reads_of_the_feed_are_refused_with_a_reason() {
    let dtp = TestEngine::spawn_with(stepped).await;
    let api = EngineApi::new(&dtp);
    for (query, code) in [
        ("limit=0", "INVALID_LIMIT"),
        ("limit=1001", "INVALID_LIMIT"),
        ("waitMs=30001", "INVALID_WAIT"),
        ("waitMs=-1", "INVALID_WAIT"),
        ("after=nope", "INVALID_CURSOR"),
        ("after=", "INVALID_CURSOR"),
        ("types=", "INVALID_TYPE"),
        ("types=a,,b", "INVALID_TYPE"),
        ("limit=ten", "INVALID_QUERY"),
        ("color=red", "INVALID_QUERY"),
    ] {
        let response = api
            .client()
            .get(api.url(&format!("/events?{query}")))
            .send()
            .await
            .unwrap();
        expect_error(response, StatusCode::BAD_REQUEST, code).await;
    }
}

fn retention(events: Duration, finished_tasks: Option<Duration>) -> Retention {
    Retention {
        events,
        finished_tasks,
        interval: Duration::from_secs(3_600),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_older_than_retention_is_gone_and_a_fresh_read_starts_at_what_is_kept() {
    let dtp = TestEngine::spawn_with(|config| {
        stepped(config);
        config.retention = retention(Duration::ZERO, None);
    })
    .await;
    let api = EngineApi::new(&dtp);
    api.create_task(&json!({"type": "demo"})).await;
    api.create_task(&json!({"type": "demo"})).await;
    let (old, _) = api.follow(None, 2).await;

    let cleaned = dtp.cleaner().clean(&CancellationToken::new()).await.unwrap();
    assert_eq!(cleaned.events, 2);
    let response = api
        .client()
        .get(api.url(&format!("/events?after={}", old[0].cursor)))
        .send()
        .await
        .unwrap();
    let gone = expect_error(response, StatusCode::GONE, "CURSOR_EXPIRED").await;
    assert!(gone.message.contains("latest"), "{}", gone.message);
    // The cursor of the last deleted event lost nothing; neither does a fresh read.
    assert!(api
        .events(&format!("after={}", old[1].cursor))
        .await
        .events
        .is_empty());
    let kept = api.create_task(&json!({"type": "demo"})).await;
    let fresh = api.events("waitMs=5000").await;
    assert_eq!(fresh.events.len(), 1);
    assert_eq!(fresh.events[0].task_id, kept.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_old_finished_tasks_in_batches_while_tasks_keep_flowing() {
    const OLD: i64 = 2_500;
    let dtp = TestEngine::spawn_with(|config| {
        config.retention = retention(Duration::from_secs(3_600), Some(Duration::from_secs(3_600)));
    })
    .await;
    let api = EngineApi::new(&dtp);
    let mut conn = dtp.database().connect();
    dtp_engine::testing::seed_history(&mut conn, OLD, 0).unwrap();
    // Two types, two finished statuses, and one task among the old ones that finished just
    // now, which must be kept while the batches after it go on.
    conn.batch_execute(
        "UPDATE tasks SET completed_at = now() - interval '2 hours' WHERE status = 'SUCCEEDED'; \
         UPDATE tasks SET task_type = 'demo-fail' WHERE id % 3 = 0; \
         UPDATE tasks SET status = 'FAILED', retry_state = 'EXHAUSTED' WHERE id % 5 = 0; \
         UPDATE tasks SET completed_at = now() WHERE id = 1001",
    )
    .unwrap();
    let recent = api.create_task(&json!({"type": "demo"})).await;
    api.wait_for_status(recent.id, TaskStatus::Succeeded, PATIENCE)
        .await;

    // Tasks keep being submitted and run while the cleaner works.
    let flowing = {
        let api = EngineApi::new(&dtp);
        tokio::spawn(async move {
            let mut ids = Vec::new();
            for _ in 0..50 {
                ids.push(api.create_task(&json!({"type": "demo"})).await.id);
            }
            ids
        })
    };
    let cleaned = dtp.cleaner().clean(&CancellationToken::new()).await.unwrap();
    let flowed = flowing.await.unwrap();
    assert_eq!(cleaned.tasks, OLD as usize - 1, "every old finished task went");
    assert!(cleaned.batches >= 3, "in batches: {cleaned:?}");
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM task_attempts WHERE task_id <= 2500 AND task_id <> 1001"
        ),
        0
    );
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM tasks WHERE id <= 2500"),
        1,
        "the one that finished just now is kept"
    );
    assert_eq!(
        api.task(recent.id).await.status,
        TaskStatus::Succeeded,
        "a recent task is kept"
    );
    for id in flowed {
        api.wait_for_status(id, TaskStatus::Succeeded, PATIENCE).await;
    }

    // Only one engine cleans at a time: while another holds the lock, a cleanup does nothing.
    conn.batch_execute(
        "UPDATE tasks SET completed_at = now() - interval '2 hours' WHERE status = 'SUCCEEDED'",
    )
    .unwrap();
    let mut holder = dtp.database().connect();
    holder
        .batch_execute("BEGIN; SELECT pg_advisory_xact_lock(hashtextextended('dtp.cleanup', 0))")
        .unwrap();
    let blocked = dtp.cleaner().clean(&CancellationToken::new()).await.unwrap();
    assert_eq!((blocked.tasks, blocked.batches), (0, 0));
    holder.batch_execute("COMMIT").unwrap();
    let after = dtp.cleaner().clean(&CancellationToken::new()).await.unwrap();
    assert_eq!(after.tasks, 52);
    assert_eq!(count(&mut conn, "SELECT count(*) AS n FROM tasks"), 0);
}

/// A statement's events are stored together, one group per type; pages, filters and
/// retention still go event by event: a page may end inside a group and the next goes on
/// from there, and a cursor inside a deleted group is expired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_events_of_one_statement_are_read_and_deleted_event_by_event() {
    const TASKS: usize = 25;
    let dtp = TestEngine::spawn_with(|config| {
        stepped(config);
        config.retention = retention(Duration::ZERO, None);
    })
    .await;
    let api = EngineApi::new(&dtp);
    let tasks: Vec<_> = (0..TASKS)
        .map(|n| json!({"type": if n % 5 == 0 { "demo-fail" } else { "demo" }, "payload": {"n": n}}))
        .collect();
    let response = api.post_batch(&json!({ "tasks": tasks })).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let batch: TaskBatchResponse = response.json().await.unwrap();
    let mut conn = dtp.database().connect();
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM task_event_groups"),
        2,
        "one insert, two types"
    );

    // Reads `expected` events in pages of `page_size` (waiting for the first while the
    // batch's transaction may still hold them back), then finds nothing more.
    let read_all = |query: &'static str, page_size: usize, expected: usize| {
        let api = &api;
        async move {
            let (mut seen, mut cursor) = (Vec::<ChangeEvent>::new(), String::new());
            while seen.len() < expected {
                let page = api
                    .events(&format!("limit={page_size}{query}&waitMs=1000{cursor}"))
                    .await;
                assert!(
                    !page.events.is_empty() && page.events.len() <= page_size,
                    "{page:?}"
                );
                seen.extend(page.events);
                cursor = format!("&after={}", page.next_cursor);
            }
            let rest = api.events(&format!("limit={page_size}{query}{cursor}")).await;
            assert!(rest.events.is_empty(), "{rest:?}");
            seen
        }
    };
    let all = read_all("", 7, TASKS).await;
    let mut ids: Vec<i64> = all.iter().map(|e| e.task_id).collect();
    ids.sort_unstable();
    let mut submitted: Vec<i64> = batch.tasks.iter().map(|t| t.id).collect();
    submitted.sort_unstable();
    assert_eq!(ids, submitted, "every task's event once, across pages of 7");
    assert!(all.iter().all(|e| e.kind == EventKind::Created));
    let failing = read_all("&types=demo-fail", 2, TASKS / 5).await;
    assert_eq!(failing.len(), TASKS / 5);
    assert!(failing.iter().all(|e| e.task_type == "demo-fail"), "{failing:?}");
    let again = read_all("", 1_000, TASKS).await;
    let cursors = |events: &[ChangeEvent]| events.iter().map(|e| e.cursor.clone()).collect::<Vec<_>>();
    assert_eq!(
        cursors(&again),
        cursors(&all),
        "one order, whatever the page size"
    );

    let cleaned = dtp.cleaner().clean(&CancellationToken::new()).await.unwrap();
    assert_eq!(cleaned.events, TASKS);
    for inside in [&all[0], &all[TASKS - 2]] {
        let response = api
            .client()
            .get(api.url(&format!("/events?after={}", inside.cursor)))
            .send()
            .await
            .unwrap();
        expect_error(response, StatusCode::GONE, "CURSOR_EXPIRED").await;
    }
    let last = &all[TASKS - 1];
    assert!(api
        .events(&format!("after={}", last.cursor))
        .await
        .events
        .is_empty());
}
