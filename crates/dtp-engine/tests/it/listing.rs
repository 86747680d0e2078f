//! `GET /tasks`: filters by status and type, page sizes, a cursor that stays correct
//! while tasks are inserted between pages, and a JSON 400 for every bad parameter.
//! Also: each attempt in `GET /tasks/{id}/attempts` says when it became due.

use dtp_contract::{TaskPage, TaskResponse, TaskStatus};
use dtp_engine::testing::TestEngine;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::api::{assert_wire_timestamp, expect_error, EngineApi};
use crate::sql::claim_as_lost_worker;
use crate::{stepped, PATIENCE};

/// A task that stays PENDING for the whole test.
const LATER: &str = "2099-01-01T00:00:00Z";
/// The largest page the API serves.
const MAX_PAGE: usize = 100;

/// `GET /tasks{query}`, which must answer 200.
async fn list(api: &EngineApi, query: &str) -> TaskPage {
    let response = api
        .client()
        .get(api.url(&format!("/tasks{query}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "GET /tasks{query}");
    response.json().await.unwrap()
}

fn ids(page: &TaskPage) -> Vec<i64> {
    page.items.iter().map(|t| t.id).collect()
}

/// Follows `nextCursor` from the first page of `filter` to the last, creating one more task
/// of `insert_type` before each next page is read; returns every id seen, in order.
async fn walk_pages(api: &EngineApi, filter: &str, limit: usize, insert_type: &str) -> Vec<i64> {
    let mut seen = Vec::new();
    let mut page = list(api, &format!("?{filter}limit={limit}")).await;
    loop {
        assert!(page.items.len() <= limit);
        seen.extend(ids(&page));
        let Some(cursor) = page.next_cursor.clone() else {
            return seen;
        };
        assert_eq!(page.items.len(), limit, "only a full page has a next one");
        api.create_task(&json!({"type": insert_type, "runAt": LATER}))
            .await;
        page = list(api, &format!("?{filter}limit={limit}&cursor={cursor}")).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_by_status_and_type_newest_first() {
    let dtp = TestEngine::spawn_with(stepped).await;
    let api = EngineApi::new(&dtp);
    let succeeded = api.create_task(&json!({"type": "demo"})).await;
    let pending = api.create_task(&json!({"type": "demo", "runAt": LATER})).await;
    let failed = api
        .create_task(&json!({"type": "demo-fail", "maxAttempts": 1}))
        .await;
    let canceled = api
        .create_task(&json!({"type": "demo-slow", "runAt": LATER}))
        .await;
    assert_eq!(api.cancel(canceled.id).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(dtp.worker().run_due_tasks().await.unwrap(), 2);
    // Running rows are kept out of the listing indexes, so each filter must still find them.
    let running = api.create_task(&json!({"type": "demo", "runAt": LATER})).await;
    claim_as_lost_worker(dtp.database(), running.id, "busy-worker", 60_000);

    let all = list(&api, "").await;
    assert_eq!(
        ids(&all),
        [running.id, canceled.id, failed.id, pending.id, succeeded.id]
    );
    assert_eq!(all.next_cursor, None);
    // Items are the tasks exactly as `GET /tasks/{id}` reports them.
    for item in &all.items {
        assert_eq!(item, &api.task(item.id).await);
    }

    let cases: [(&str, Vec<i64>); 11] = [
        ("?status=SUCCEEDED", vec![succeeded.id]),
        ("?status=PENDING", vec![pending.id]),
        ("?status=FAILED", vec![failed.id]),
        ("?status=CANCELED", vec![canceled.id]),
        ("?status=RUNNING", vec![running.id]),
        ("?type=demo", vec![running.id, pending.id, succeeded.id]),
        ("?type=demo-fail", vec![failed.id]),
        ("?type=demo&status=PENDING", vec![pending.id]),
        ("?type=demo&status=RUNNING", vec![running.id]),
        ("?type=demo-fail&status=RUNNING", vec![]),
        ("?type=no-such-type", vec![]),
    ];
    for (query, expected) in cases {
        let page = list(&api, query).await;
        assert_eq!(ids(&page), expected, "{query}");
        assert_eq!(page.next_cursor, None, "{query}");
    }
    let statuses: Vec<TaskStatus> = list(&api, "?status=FAILED")
        .await
        .items
        .iter()
        .map(|t| t.status)
        .collect();
    assert_eq!(statuses, [TaskStatus::Failed]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_is_an_object_with_items_and_next_cursor() {
    let dtp = TestEngine::spawn_with(stepped).await;
    let api = EngineApi::new(&dtp);
    let empty: Value = api
        .client()
        .get(api.url("/tasks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(empty, json!({"items": [], "nextCursor": null}));

    api.create_task(&json!({"type": "demo"})).await;
    api.create_task(&json!({"type": "demo"})).await;
    let page: Value = api
        .client()
        .get(api.url("/tasks?limit=1"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let cursor = page["nextCursor"].as_str().unwrap();
    // The cursor is opaque: it does not spell the id it continues after.
    let last_id = page["items"][0]["id"].as_i64().unwrap();
    assert_ne!(cursor, last_id.to_string());
    assert_wire_timestamp(&page["items"][0]["createdAt"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_defaults_to_20_and_goes_up_to_100() {
    let dtp = TestEngine::spawn_with(stepped).await;
    let api = EngineApi::new(&dtp);
    let mut created = Vec::new();
    for _ in 0..21 {
        created.push(api.create_task(&json!({"type": "demo"})).await.id);
    }
    created.reverse();

    let default = list(&api, "").await;
    assert_eq!(ids(&default), created[..20]);
    assert!(default.next_cursor.is_some());
    let exact = list(&api, "?limit=21").await;
    assert_eq!(ids(&exact), created);
    assert_eq!(exact.next_cursor, None, "no empty last page");
    let most = list(&api, "?limit=100").await;
    assert_eq!(ids(&most), created);
    let one = list(&api, "?limit=1").await;
    assert_eq!(ids(&one), created[..1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_neither_repeat_nor_skip_while_tasks_are_inserted() {
    let dtp = TestEngine::spawn_with(stepped).await;
    let api = EngineApi::new(&dtp);
    for n in 0..7 {
        api.create_task(&json!({"type": "demo", "payload": n})).await;
        api.create_task(&json!({"type": "demo-slow", "runAt": LATER}))
            .await;
    }
    // Half of the demo tasks run; of the others, two stay PENDING and two are RUNNING
    // between them, so that a type's pages cross both kinds of rows.
    let mut later = Vec::new();
    for n in 0..4 {
        later.push(
            api.create_task(&json!({"type": "demo", "payload": n, "runAt": LATER}))
                .await
                .id,
        );
    }
    dtp.worker().run_due_tasks().await.unwrap();
    for id in [later[0], later[2]] {
        claim_as_lost_worker(dtp.database(), id, "busy-worker", 60_000);
    }

    // Each walk must give exactly what one big page gave before it started: tasks inserted
    // while paging are newer than any cursor, so they belong to a first page only.
    for (filter, limit, insert_type) in [
        ("", 3, "demo"),
        ("type=demo&", 2, "demo"),
        ("type=demo-slow&", 3, "demo-slow"),
        ("status=PENDING&", 4, "demo"),
        ("status=SUCCEEDED&type=demo&", 2, "demo"),
        ("status=PENDING&type=demo&", 1, "demo"),
        ("status=RUNNING&", 1, "demo"),
        ("status=RUNNING&type=demo&", 1, "demo"),
    ] {
        let before = list(&api, &format!("?{filter}limit={MAX_PAGE}")).await;
        assert!(before.items.len() > limit, "{filter}: more than one page");
        assert!(ids(&before).windows(2).all(|w| w[0] > w[1]), "newest first");
        let walked = walk_pages(&api, filter, limit, insert_type).await;
        assert_eq!(walked, ids(&before), "{filter} limit={limit}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_parameter_is_a_json_400() {
    let dtp = TestEngine::spawn_with(stepped).await;
    let api = EngineApi::new(&dtp);
    let task = api.create_task(&json!({"type": "demo"})).await;
    api.create_task(&json!({"type": "demo"})).await;
    // The first page holds the newer task; its cursor continues after it.
    let good = list(&api, "?limit=1").await.next_cursor.unwrap();
    let mut tampered = good.clone().into_bytes();
    tampered[5] = if tampered[5] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let typed = list(&api, "?type=demo&limit=1").await.next_cursor.unwrap();

    let cases = [
        ("status=pending".to_owned(), "INVALID_STATUS"),
        ("status=DONE".to_owned(), "INVALID_STATUS"),
        ("status=".to_owned(), "INVALID_STATUS"),
        ("type=".to_owned(), "INVALID_TYPE"),
        ("type=demo%00".to_owned(), "INVALID_TYPE"),
        ("limit=0".to_owned(), "INVALID_LIMIT"),
        ("limit=101".to_owned(), "INVALID_LIMIT"),
        ("limit=-3".to_owned(), "INVALID_LIMIT"),
        ("limit=abc".to_owned(), "INVALID_QUERY"),
        ("cursor=".to_owned(), "INVALID_CURSOR"),
        ("cursor=zzz".to_owned(), "INVALID_CURSOR"),
        (format!("cursor={}", task.id), "INVALID_CURSOR"),
        (format!("cursor={tampered}"), "INVALID_CURSOR"),
        (format!("cursor={}", &good[..good.len() - 1]), "INVALID_CURSOR"),
        (format!("cursor={}", good.to_uppercase()), "INVALID_CURSOR"),
        ("cursor=76313a31".to_owned(), "INVALID_CURSOR"),
        // A cursor continues only its own listing: not one with other filters.
        (format!("cursor={good}&type=demo"), "INVALID_CURSOR"),
        (format!("cursor={good}&status=PENDING"), "INVALID_CURSOR"),
        (format!("cursor={typed}"), "INVALID_CURSOR"),
        ("bogus=1".to_owned(), "INVALID_QUERY"),
        ("Status=PENDING".to_owned(), "INVALID_QUERY"),
    ];
    for (query, code) in cases {
        let response = api
            .client()
            .get(api.url(&format!("/tasks?{query}")))
            .send()
            .await
            .unwrap();
        expect_error(response, StatusCode::BAD_REQUEST, code).await;
    }
    // The good cursor continues after the newer task: a last page with the older one, and
    // any engine on the same database takes it.
    let after = list(&api, &format!("?cursor={good}")).await;
    assert_eq!((ids(&after), after.next_cursor), (vec![task.id], None));
    let other = TestEngine::spawn_sharing(&dtp, stepped).await;
    let after = list(&EngineApi::new(&other), &format!("?cursor={good}")).await;
    assert_eq!(ids(&after), vec![task.id]);
    let after = list(&api, &format!("?type=demo&cursor={typed}")).await;
    assert_eq!(ids(&after), vec![task.id]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempts_say_when_they_became_due() {
    let dtp = TestEngine::spawn_with(stepped).await;
    let api = EngineApi::new(&dtp);
    // A runAt in the past means now: the task does not jump ahead of those already waiting.
    let waiting = api.create_task(&json!({"type": "demo"})).await;
    let late = api
        .create_task(&json!({"type": "demo", "runAt": "2020-01-02T03:04:05.678Z"}))
        .await;
    assert!(late.scheduled_for >= waiting.scheduled_for, "{late:?}");
    assert_eq!(late.scheduled_for, late.created_at);
    dtp.worker().run_due_tasks().await.unwrap();
    let attempts = api.attempts(late.id).await;
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].due_at, Some(late.scheduled_for));
    let run_at = serde_json::to_value(&late).unwrap()["scheduledFor"].clone();
    let body: Value = api
        .client()
        .get(api.url(&format!("/tasks/{}/attempts", late.id)))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body[0]["dueAt"], run_at);

    // A retry is due when the backoff ends, after the failed attempt finished.
    let retried = TestEngine::spawn().await;
    let api = EngineApi::new(&retried);
    let task = api
        .create_task(&json!({"type": "demo-fail", "payload": {"failTimes": 1}}))
        .await;
    let done: TaskResponse = api
        .wait_for_status(task.id, TaskStatus::Succeeded, PATIENCE)
        .await;
    let attempts = api.attempts(task.id).await;
    let outcomes: Vec<&str> = attempts.iter().filter_map(|a| a.outcome.as_deref()).collect();
    assert_eq!(outcomes, ["FAILED", "SUCCEEDED"]);
    assert_eq!(attempts[0].due_at, Some(task.scheduled_for));
    assert_eq!(attempts[1].due_at, Some(done.scheduled_for));
    assert!(attempts[1].due_at.unwrap() >= attempts[0].finished_at.unwrap());
    for attempt in &attempts {
        assert!(attempt.due_at.unwrap() <= attempt.started_at, "{attempt:?}");
    }
}
