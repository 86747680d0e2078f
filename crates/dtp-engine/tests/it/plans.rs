//! The statements every task goes through, and every kind of listing, read indexes, not
//! whole tables, however much history the tables hold: checked on the plans Postgres picks
//! after `ANALYZE`; a read of the change feed, also before.

use diesel::connection::SimpleConnection;
use dtp_engine::store::task_events::explain_feed_read;
use dtp_engine::store::task_stats::explain_task_stats;
use dtp_engine::store::tasks::{
    explain_claim_as_claim_loop, explain_cleanup, explain_hot_path, explain_listings,
};
use dtp_engine::testing::{seed_history, TestEngine};

use crate::stepped;

/// Finished tasks (each with its attempt row), future tasks, due tasks and running tasks.
const FINISHED: i64 = 200_000;
const FUTURE: i64 = 20_000;
const DUE: i64 = 2_000;
const RUNNING: i64 = 500;

/// The claim loop runs the claim's generic plan: due tasks come from the pending index, and
/// the claimed ids are looked up through the primary key, never by reading the whole table.
fn assert_claims_through_indexes(generic_claim: &str) {
    assert!(
        generic_claim.contains("using tasks_pending_due")
            && generic_claim.contains("tasks_pkey")
            && generic_claim.contains("= ANY")
            && !generic_claim.contains("Seq Scan"),
        "{generic_claim}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hot_path_and_listings_do_not_scan_history() {
    let dtp = TestEngine::spawn_with(stepped).await;
    let mut conn = dtp.database().connect();
    // The claim loop's plan may be made while the table is still empty, and is kept.
    assert_claims_through_indexes(&explain_claim_as_claim_loop(&mut conn).unwrap());
    seed_history(&mut conn, FINISHED, FUTURE).unwrap();
    conn.batch_execute(&format!(
        "INSERT INTO tasks (task_type, payload, max_attempts, timeout_ms) \
         SELECT 'demo', '{{}}', 3, 1000 FROM generate_series(1, {DUE}); \
         INSERT INTO tasks (task_type, payload, max_attempts, timeout_ms, status, attempt_count, \
                            processing_started_at, lease_token, lease_expires_at, worker_id) \
         SELECT 'demo', '{{}}', 3, 1000, 'RUNNING', 1, now(), nextval('task_lease_tokens'), \
                now() + interval '30 seconds', 'busy' \
         FROM generate_series(1, {RUNNING}); \
         ANALYZE tasks; ANALYZE task_attempts;"
    ))
    .unwrap();

    let mut plans: Vec<(String, String)> = explain_hot_path(&mut conn)
        .unwrap()
        .into_iter()
        .map(|(statement, plan)| (statement.to_owned(), plan))
        .collect();
    assert_eq!(plans.len(), 6);
    // Workers' completions find their tasks by id: the running index also holds the entries
    // of every task finished since the last vacuum.
    let (_, worker_finish) = plans
        .iter()
        .find(|(s, _)| s == "finish_attempts of workers")
        .unwrap();
    assert!(
        worker_finish.contains("tasks_pkey") && !worker_finish.contains("tasks_running_lease"),
        "{worker_finish}"
    );
    // A type with a limit is claimed from its own queue's index.
    let (_, type_claim) = plans
        .iter()
        .find(|(s, _)| s == "claim_due_tasks_of_type")
        .unwrap();
    assert!(type_claim.contains("tasks_pending_by_type"), "{type_claim}");
    let generic_claim = explain_claim_as_claim_loop(&mut conn).unwrap();
    assert_claims_through_indexes(&generic_claim);
    plans.push(("claim_due_tasks, generic plan".to_owned(), generic_claim));
    let listings = explain_listings(&mut conn, "demo").unwrap();
    assert_eq!(listings.len(), 12);
    // A rare status of a common type is an index range of its own, not a walk through the
    // type's history filtering on status (where every row matches, walking the primary key
    // backwards is as good).
    let (_, canceled) = listings
        .iter()
        .find(|(q, _)| q == "status=CANCELED type=demo")
        .unwrap();
    assert!(canceled.contains("tasks_type_status_id"), "{canceled}");
    assert!(!canceled.contains("Filter: "), "{canceled}");
    // The running tasks of a type come from the running rows, not from the type's history.
    let (_, running_of_type) = listings.iter().find(|(q, _)| q == "status=- type=demo").unwrap();
    assert!(
        running_of_type.contains("tasks_running_lease"),
        "{running_of_type}"
    );
    // A rare status of every type is each type's range of the listing index (the types
    // found by skipping along it), not a walk through the history filtering on status.
    let (_, failed) = listings
        .iter()
        .find(|(q, _)| q == "status=FAILED type=-")
        .unwrap();
    assert!(
        failed.contains("tasks_type_status_id")
            && failed.contains("Recursive Union")
            && !failed.contains("Filter: (status"),
        "{failed}"
    );
    plans.extend(listings);
    // The cleaner's oldest finished tasks of a type and status are a range of the same index.
    let cleanup = explain_cleanup(&mut conn, "demo").unwrap();
    assert_eq!(cleanup.len(), 3);
    for (statement, plan) in &cleanup {
        assert!(plan.contains("tasks_type_status_id"), "{statement}:\n{plan}");
    }
    plans.extend(cleanup);
    // The metrics count pending tasks in the two queues' indexes.
    let stats = explain_task_stats(&mut conn).unwrap();
    for (statement, plan) in &stats {
        assert!(
            plan.contains("tasks_pending_due") && plan.contains("tasks_pending_by_type"),
            "{statement}:\n{plan}"
        );
    }
    plans.extend(
        stats
            .into_iter()
            .map(|(statement, plan)| (statement.to_owned(), plan)),
    );
    // A read of the change feed walks its key from the cursor, also before the events' first
    // statistics, on a feed of many statements' groups (each of the seeding's statements
    // wrote one group per type); its bounds are read once, not per row.
    conn.batch_execute(&format!(
        "INSERT INTO task_event_groups (position, task_type, submitted_by, events, task_ids, kinds, \
                                        statuses, retry_states, attempts, errors, idempotency_keys) \
         SELECT g::bigint * 65536, 'demo', 'taskpilot', 1, ARRAY[g], ARRAY['CREATED'], ARRAY['PENDING'], \
                ARRAY['NONE'], ARRAY[0], ARRAY[NULL::text], ARRAY[NULL::text] \
         FROM generate_series(1, {FINISHED}) AS g"
    ))
    .unwrap();
    let feed_read = explain_feed_read(&mut conn).unwrap();
    assert!(
        feed_read.contains("task_event_groups_pkey")
            && !feed_read.contains("Seq Scan on task_event_groups")
            && !feed_read.contains("JIT"),
        "{feed_read}"
    );
    for (statement, plan) in &plans {
        for table in ["tasks", "task_attempts"] {
            assert!(
                !plan.contains(&format!("Seq Scan on {table} "))
                    && !plan.ends_with(&format!("Seq Scan on {table}")),
                "{statement} scans {table} sequentially:\n{plan}"
            );
        }
        assert!(plan.contains("Index"), "{statement} uses no index:\n{plan}");
    }
}
