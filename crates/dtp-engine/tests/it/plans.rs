//! The statements every task goes through read indexes, not whole tables, however much
//! history the tables hold: checked on the plans Postgres picks after `ANALYZE`.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use dtp_engine::store::tasks::explain_hot_path;
use dtp_engine::testing::TestEngine;

use crate::stepped;

/// Finished tasks (each with its attempt row), future tasks, due tasks and running tasks.
const FINISHED: i64 = 200_000;
const FUTURE: i64 = 20_000;
const DUE: i64 = 2_000;
const RUNNING: i64 = 500;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hot_path_does_not_scan_history() {
    let dtp = TestEngine::spawn_with(stepped).await;
    let mut conn = dtp.database().connect();
    diesel::sql_query(format!(
        "INSERT INTO tasks (task_type, payload, max_attempts, timeout_ms, status, retry_state, attempt_count, \
                            created_at, scheduled_for, processing_started_at, completed_at, updated_at) \
         SELECT 'demo', '{{}}', 3, 1000, 'SUCCEEDED', 'COMPLETED', 1, \
                now() - n * interval '1 second', now() - n * interval '1 second', \
                now() - n * interval '1 second', now() - n * interval '1 second', now() \
         FROM generate_series(1, {FINISHED}) AS n"
    ))
    .execute(&mut conn)
    .unwrap();
    diesel::sql_query(
        "INSERT INTO task_attempts (lease_token, task_id, attempt, worker_id, started_at, finished_at, outcome) \
         SELECT nextval('task_lease_tokens'), id, 1, 'old', processing_started_at, completed_at, 'SUCCEEDED' \
         FROM tasks",
    )
    .execute(&mut conn)
    .unwrap();
    conn.batch_execute(&format!(
        "INSERT INTO tasks (task_type, payload, max_attempts, timeout_ms, scheduled_for) \
         SELECT 'demo', '{{}}', 3, 1000, now() + interval '1 day' + n * interval '1 second' \
         FROM generate_series(1, {FUTURE}) AS n; \
         INSERT INTO tasks (task_type, payload, max_attempts, timeout_ms) \
         SELECT 'demo', '{{}}', 3, 1000 FROM generate_series(1, {DUE}); \
         INSERT INTO tasks (task_type, payload, max_attempts, timeout_ms, status, attempt_count, \
                            processing_started_at, lease_token, lease_expires_at, worker_id) \
         SELECT 'demo', '{{}}', 3, 1000, 'RUNNING', 1, now(), nextval('task_lease_tokens'), \
                now() + interval '30 seconds', 'busy' \
         FROM generate_series(1, {RUNNING}); \
         ANALYZE tasks; ANALYZE task_attempts;"
    ))
    .unwrap();

    let plans = explain_hot_path(&mut conn).unwrap();
    assert_eq!(plans.len(), 4);
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
