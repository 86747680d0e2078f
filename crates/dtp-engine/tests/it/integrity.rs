//! Attempts belong to tasks: the database refuses an attempt of no task, or one moved to
//! another task, and deleting tasks deletes their attempts. These rules are enforced by
//! triggers per statement rather than a foreign key (migration 000005), so they are checked here.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error};
use dtp_engine::testing::TestEngine;
use serde_json::json;

use crate::api::EngineApi;
use crate::sql::{all_attempt_rows, attempt_rows, claim_as_lost_worker};
use crate::stepped;

const LATER: &str = "2099-01-01T00:00:00Z";

fn assert_foreign_key_violation(result: QueryResult<()>, what: &str) {
    match result {
        Err(Error::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, _)) => {}
        other => panic!("{what}: expected a foreign key violation, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_must_name_a_task_that_exists() {
    let dtp = TestEngine::spawn_with(stepped).await;
    let api = EngineApi::new(&dtp);
    let task = api.create_task(&json!({"type": "demo", "runAt": LATER})).await;
    let mut conn = dtp.database().connect();
    let insert = |task_ids: &str| {
        format!(
            "INSERT INTO task_attempts (lease_token, task_id, attempt, worker_id, started_at) \
             SELECT nextval('task_lease_tokens'), t, 1, 'w', now() FROM unnest(ARRAY[{task_ids}]::bigint[]) t"
        )
    };

    assert_foreign_key_violation(
        conn.batch_execute(&insert(&format!("{}", task.id + 1))),
        "one attempt of no task",
    );
    // One bad row in a many-row statement refuses the whole statement.
    assert_foreign_key_violation(
        conn.batch_execute(&insert(&format!("{0}, {1}, {0}", task.id, task.id + 1))),
        "a batch with one attempt of no task",
    );
    assert!(all_attempt_rows(dtp.database()).is_empty());

    conn.batch_execute(&insert(&format!("{0}, {0}", task.id)))
        .unwrap();
    assert_eq!(attempt_rows(dtp.database(), task.id).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_cannot_move_to_another_task() {
    let dtp = TestEngine::spawn_with(stepped).await;
    let api = EngineApi::new(&dtp);
    let first = api.create_task(&json!({"type": "demo", "runAt": LATER})).await;
    let second = api.create_task(&json!({"type": "demo", "runAt": LATER})).await;
    claim_as_lost_worker(dtp.database(), first.id, "w", 60_000);
    let mut conn = dtp.database().connect();

    assert_foreign_key_violation(
        conn.batch_execute(&format!(
            "UPDATE task_attempts SET task_id = {} WHERE task_id = {}",
            second.id, first.id
        )),
        "moving an attempt",
    );
    // Writes that leave the task alone are untouched by the rule.
    conn.batch_execute(&format!(
        "UPDATE task_attempts SET task_id = task_id, error = 'noted' WHERE task_id = {}",
        first.id
    ))
    .unwrap();
    let attempts = attempt_rows(dtp.database(), first.id);
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].error.as_deref(), Some("noted"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_tasks_deletes_their_attempts() {
    let dtp = TestEngine::spawn_with(stepped).await;
    let api = EngineApi::new(&dtp);
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let task = api.create_task(&json!({"type": "demo", "runAt": LATER})).await;
        claim_as_lost_worker(dtp.database(), task.id, "w", 60_000);
        tasks.push(task.id);
    }
    let mut conn = dtp.database().connect();

    conn.batch_execute(&format!(
        "DELETE FROM tasks WHERE id IN ({}, {})",
        tasks[0], tasks[2]
    ))
    .unwrap();
    let left: Vec<i64> = all_attempt_rows(dtp.database())
        .iter()
        .map(|a| a.task_id)
        .collect();
    assert_eq!(left, [tasks[1]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_name_no_variant_has_fails_the_read_instead_of_becoming_a_default() {
    let dtp = TestEngine::spawn_with(stepped).await;
    let api = EngineApi::new(&dtp);
    let task = api.create_task(&json!({"type": "demo", "runAt": LATER})).await;
    claim_as_lost_worker(dtp.database(), task.id, "w", 60_000);
    let lease_token = crate::sql::task_row(dtp.database(), task.id)
        .lease_token
        .expect("claimed");
    let mut conn = dtp.database().connect();
    let lease = dtp_engine::store::tasks::find_lease(&mut conn, task.id, lease_token);
    assert!(lease.unwrap().is_some(), "a known name reads");
    // Only a bug past the CHECK constraint could write such a name: play that bug.
    conn.batch_execute(
        "ALTER TABLE tasks DROP CONSTRAINT tasks_retry_state_matches_status; \
         UPDATE tasks SET retry_state = 'SOMETIMES' WHERE status = 'RUNNING'",
    )
    .unwrap();
    match dtp_engine::store::tasks::find_lease(&mut conn, task.id, lease_token) {
        Err(Error::DeserializationError(e)) => assert!(e.to_string().contains("SOMETIMES"), "{e}"),
        other => panic!("expected the read to fail, got {other:?}"),
    }
}
