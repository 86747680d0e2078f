//! `GET /api/tasks` with filters: status, type and bound combine with an opaque cursor
//! that stays correct while web tasks are inserted; every bad parameter is a JSON 400.

use serde_json::{json, Value};

use crate::harness::{assert_error, TestSystem};

/// The largest page the API serves.
const MAX_PAGE: usize = 100;

/// `GET /api/tasks{query}`, which must answer 200: the ids and the next cursor.
async fn list(system: &TestSystem, query: &str) -> (Vec<i64>, Option<String>) {
    let page = system.list(query).await;
    (page.items.iter().map(|t| t.id).collect(), page.next_cursor)
}

/// Follows `nextCursor` from the first page of `filter` to the last, creating a web task of
/// type `insert_type` before each next page is read; returns every id seen, in order.
async fn walk_pages(system: &TestSystem, filter: &str, limit: usize, insert_type: &str) -> Vec<i64> {
    let mut seen = Vec::new();
    let (mut ids, mut next) = list(system, &format!("?{filter}limit={limit}")).await;
    loop {
        assert!(ids.len() <= limit);
        seen.append(&mut ids);
        let Some(cursor) = next else {
            return seen;
        };
        system.create_web_task(insert_type, Value::Null).await;
        (ids, next) = list(system, &format!("?{filter}limit={limit}&cursor={cursor}")).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_by_status_type_and_binding_newest_first() {
    let system = TestSystem::spawn_with(|c| c.worker_enabled = false).await;
    let report_unbound = system.create_web_task("report", json!(1)).await;
    let demo_bound = system.create_web_task("demo", json!(2)).await;
    let report_bound = system.create_web_task("report", json!(3)).await;
    let demo_unbound = system.create_web_task("demo", json!(4)).await;
    system.bound(demo_bound, "demo").await;
    system.bound(report_bound, "demo-slow").await;

    let bound = vec![report_bound, demo_bound];
    let unbound = vec![demo_unbound, report_unbound];
    let cases = [
        ("", vec![demo_unbound, report_bound, demo_bound, report_unbound]),
        ("?status=SUBMITTED", bound.clone()),
        ("?status=PENDING", unbound.clone()),
        ("?bound=true", bound.clone()),
        ("?bound=false", unbound.clone()),
        ("?type=report", vec![report_bound, report_unbound]),
        ("?type=demo&bound=true", vec![demo_bound]),
        ("?type=demo&status=PENDING", vec![demo_unbound]),
        ("?type=report&status=SUBMITTED&bound=true", vec![report_bound]),
        ("?status=PENDING&bound=true", vec![]),
        ("?type=nothing-like-it", vec![]),
    ];
    for (query, expected) in cases {
        assert_eq!(list(&system, query).await, (expected, None), "{query}");
    }
    let page = system.list("?bound=true&limit=1").await;
    assert_eq!(page.items[0].status, "SUBMITTED");
    assert_eq!(page.items[0].scheduler_type.as_deref(), Some("demo-slow"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filtered_pages_neither_repeat_nor_skip_while_tasks_are_inserted() {
    let system = TestSystem::spawn_with(|c| c.worker_enabled = false).await;
    for n in 0..6 {
        let report = system.create_web_task("report", json!(n)).await;
        system.create_web_task("demo", json!(n)).await;
        if n % 2 == 0 {
            system.bound(report, "demo").await;
        }
    }
    // Each walk gives exactly what one big page gave before it started: web tasks inserted
    // while paging are newer than any cursor, so they belong to a first page only.
    for (filter, limit, insert_type) in [
        ("", 5, "report"),
        ("type=report&", 2, "report"),
        ("type=report&bound=false&", 1, "report"),
        ("status=SUBMITTED&", 2, "report"),
        ("bound=false&type=demo&", 4, "demo"),
    ] {
        let (before, next) = list(&system, &format!("?{filter}limit={MAX_PAGE}")).await;
        assert_eq!(next, None);
        assert!(before.len() > limit, "{filter}: more than one page");
        let walked = walk_pages(&system, filter, limit, insert_type).await;
        assert_eq!(walked, before, "{filter} limit={limit}");
    }
    // The cursor is opaque: it does not spell the id it continues after.
    let (ids, next) = list(&system, "?limit=1").await;
    assert_ne!(next.unwrap(), ids[0].to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_listing_parameter_is_a_json_400() {
    let system = TestSystem::spawn_with(|c| c.worker_enabled = false).await;
    let id = system.create_web_task("demo", Value::Null).await;
    system.create_web_task("demo", Value::Null).await;
    // The first page holds the newer web task; its cursor continues after it.
    let good = list(&system, "?limit=1").await.1.unwrap();
    let tampered = format!("{}{}", if good.starts_with('A') { "B" } else { "A" }, &good[1..]);
    // DTP's cursors are sealed for DTP's listing, under DTP's key.
    system.bind(id, "demo").await;
    system.bind(id + 1, "demo").await;
    let dtp_page: Value = system
        .http
        .get(format!("{}/tasks?limit=1", system.dtp.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let dtp_cursor = dtp_page["nextCursor"].as_str().unwrap().to_owned();
    let cases = [
        ("status=RUNNING".to_owned(), "INVALID_STATUS"),
        ("status=pending".to_owned(), "INVALID_STATUS"),
        ("status=".to_owned(), "INVALID_STATUS"),
        ("bound=yes".to_owned(), "INVALID_BOUND"),
        ("bound=1".to_owned(), "INVALID_BOUND"),
        ("bound=TRUE".to_owned(), "INVALID_BOUND"),
        ("bound=".to_owned(), "INVALID_BOUND"),
        ("type=".to_owned(), "INVALID_TYPE"),
        ("type=a%00b".to_owned(), "INVALID_TYPE"),
        ("limit=0".to_owned(), "INVALID_LIMIT"),
        ("limit=101".to_owned(), "INVALID_LIMIT"),
        ("limit=abc".to_owned(), "INVALID_QUERY"),
        ("cursor=zzz".to_owned(), "INVALID_CURSOR"),
        (format!("cursor={id}"), "INVALID_CURSOR"),
        (format!("cursor={tampered}"), "INVALID_CURSOR"),
        ("cursor=76313a31".to_owned(), "INVALID_CURSOR"),
        (format!("cursor={dtp_cursor}"), "INVALID_CURSOR"),
        (format!("cursor={good}&bound=true"), "INVALID_CURSOR"),
        (format!("cursor={good}&type=demo"), "INVALID_CURSOR"),
        ("schedulerType=demo".to_owned(), "INVALID_QUERY"),
    ];
    for (query, code) in cases {
        let (status, body) = system
            .send(system.http.get(system.url(&format!("/api/tasks?{query}"))))
            .await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_error(&body, code);
    }
    // The good cursor continues after the newer web task: the older one, and no more.
    assert_eq!(list(&system, &format!("?cursor={good}")).await, (vec![id], None));
}
