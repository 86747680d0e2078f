//! The statements every task goes through read indexes, not whole tables, however much
//! history the tables hold: checked on the plans Postgres picks after `ANALYZE`.

use diesel::connection::SimpleConnection;
use dtp_engine::store::tasks::explain_hot_path;
use dtp_engine::testing::{seed_history, TestEngine};

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
