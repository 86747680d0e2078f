//! Inserting tasks: a batch accepted or refused as a whole, or independent submissions
//! written together; either way one multi-row insert that skips taken idempotency keys.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bool, Int4, Jsonb, Nullable, Text, Timestamptz};
use service_postgres::prepared::Prepared;
use std::collections::{HashMap, VecDeque};

use super::{TaskRow, TASK_ROW_COLUMNS};
use crate::domain::{NewTask, TaskState};

/// The result of an insert that may have hit an existing idempotency key.
pub enum Inserted {
    Created(TaskRow),
    Existing(TaskRow),
}

/// A batch's idempotency key names an existing task with another type, payload or
/// maxAttempts; the whole batch was rolled back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyNamesAnotherTask {
    /// Position of the offending task in the inserted slice.
    pub slot: usize,
    pub existing_id: i64,
}

/// Why a batch transaction ended without committing.
enum BatchAbort {
    KeyNamesAnotherTask(KeyNamesAnotherTask),
    Query(diesel::result::Error),
}

impl From<diesel::result::Error> for BatchAbort {
    fn from(err: diesel::result::Error) -> Self {
        BatchAbort::Query(err)
    }
}

/// Inserts `tasks` (idempotency keys distinct) in one transaction: one multi-row insert that
/// skips taken keys, then one read of the tasks those keys name; rolls back on a mismatch.
pub fn insert_tasks(
    conn: &mut PgConnection,
    tasks: &[NewTask],
) -> QueryResult<Result<Vec<Inserted>, KeyNamesAnotherTask>> {
    if without_keys(tasks) {
        // One statement, atomic on its own: no BEGIN and COMMIT round trips.
        return insert_or_find(conn, tasks).map(Ok);
    }
    let outcome = conn.transaction(|conn| {
        let answers = insert_or_find(conn, tasks)?;
        for (slot, (task, answer)) in tasks.iter().zip(&answers).enumerate() {
            if let Inserted::Existing(row) = answer {
                if !task.matches(&row.submitted_as()) {
                    return Err(BatchAbort::KeyNamesAnotherTask(KeyNamesAnotherTask {
                        slot,
                        existing_id: row.id,
                    }));
                }
            }
        }
        Ok(answers)
    });
    match outcome {
        Ok(answers) => Ok(Ok(answers)),
        Err(BatchAbort::KeyNamesAnotherTask(reused)) => Ok(Err(reused)),
        Err(BatchAbort::Query(e)) => Err(e),
    }
}

/// Inserts independent submissions (idempotency keys distinct) together; each is answered
/// on its own, an existing task for a taken key whatever it holds.
///
/// Only a group that mixes keyed and unkeyed submissions needs a transaction: if the read of
/// the tasks taken keys name fails, the writer retries the group in parts, and committed
/// unkeyed rows would be inserted twice. Without keys the insert is one atomic statement
/// that reads nothing back. With a key on every submission, a retry finds each committed row
/// under its key and answers it as existing, as a client's own retry with that key would.
pub fn insert_each_task(conn: &mut PgConnection, tasks: &[NewTask]) -> QueryResult<Vec<Inserted>> {
    if without_keys(tasks) || tasks.iter().all(|t| t.idempotency_key.is_some()) {
        return insert_or_find(conn, tasks);
    }
    conn.transaction(|conn| insert_or_find(conn, tasks))
}

/// Without idempotency keys an insert is one statement that reads nothing back, atomic on
/// its own. With keys, a batch must roll back when a key names another task.
fn without_keys(tasks: &[NewTask]) -> bool {
    tasks.iter().all(|t| t.idempotency_key.is_none())
}

/// A task's idempotency key with its scope: what makes it unique.
type ScopedKey = (String, String);

fn scoped_key(scope: &str, key: Option<&str>) -> Option<ScopedKey> {
    key.map(|key| (scope.to_owned(), key.to_owned()))
}

/// What the insert decided for a new row; the rest of the row is the submission as sent.
#[derive(Debug, QueryableByName)]
struct NewRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Timestamptz)]
    created_at: DateTime<Utc>,
    #[diesel(sql_type = Timestamptz)]
    scheduled_for: DateTime<Utc>,
    #[diesel(sql_type = Text)]
    idempotency_scope: String,
    #[diesel(sql_type = Nullable<Text>)]
    idempotency_key: Option<String>,
}

impl NewRow {
    /// The stored row of `task`, without reading it back: the columns the insert does not
    /// set hold their defaults, and `created_at` and `updated_at` both default to the
    /// statement's `now()`.
    fn into_task_row(self, task: &NewTask) -> TaskRow {
        TaskRow {
            id: self.id,
            task_type: task.task_type.clone(),
            payload: task.payload.clone(),
            status: TaskState::NEW.status.as_str().to_owned(),
            retry_state: TaskState::NEW.retry_state.as_str().to_owned(),
            attempt_count: 0,
            max_attempts: task.max_attempts,
            last_error: None,
            idempotency_key: self.idempotency_key,
            created_at: self.created_at,
            scheduled_for: self.scheduled_for,
            processing_started_at: None,
            completed_at: None,
            updated_at: self.created_at,
            lease_token: None,
            lease_expires_at: None,
            worker_id: None,
            timeout_ms: task.timeout_ms,
            result: None,
            idempotency_scope: self.idempotency_scope,
            requested_run_at: task.run_at,
        }
    }
}

/// For each task, in order: the row inserted for it, or the existing row its taken key names.
fn insert_or_find(conn: &mut PgConnection, tasks: &[NewTask]) -> QueryResult<Vec<Inserted>> {
    let mut created_by_key: HashMap<ScopedKey, NewRow> = HashMap::new();
    let mut created_without_key = VecDeque::new();
    for row in insert_rows_skipping_taken_keys(conn, tasks)? {
        match scoped_key(&row.idempotency_scope, row.idempotency_key.as_deref()) {
            Some(key) => {
                created_by_key.insert(key, row);
            }
            None => created_without_key.push_back(row),
        }
    }
    let taken: Vec<ScopedKey> = tasks
        .iter()
        .filter_map(|t| scoped_key(&t.idempotency_scope, t.idempotency_key.as_deref()))
        .filter(|key| !created_by_key.contains_key(key))
        .collect();
    let mut existing_by_key: HashMap<ScopedKey, TaskRow> = HashMap::new();
    if !taken.is_empty() {
        // Conflicting inserts were waited for, so the rows they made are visible now.
        let (scopes, keys): (Vec<&str>, Vec<&str>) =
            taken.iter().map(|(s, k)| (s.as_str(), k.as_str())).unzip();
        let rows: Vec<TaskRow> = diesel::sql_query(format!(
            "SELECT {TASK_ROW_COLUMNS} FROM tasks \
             WHERE (idempotency_scope, idempotency_key) IN (SELECT * FROM unnest($1::text[], $2::text[])) \
               AND idempotency_key IS NOT NULL"
        ))
        .bind::<Array<Text>, _>(scopes)
        .bind::<Array<Text>, _>(keys)
        .load(conn)?;
        existing_by_key.extend(
            rows.into_iter()
                .filter_map(|r| Some((scoped_key(&r.idempotency_scope, r.idempotency_key.as_deref())?, r))),
        );
    }
    tasks
        .iter()
        .map(
            |task| match scoped_key(&task.idempotency_scope, task.idempotency_key.as_deref()) {
                None => Ok(Inserted::Created(
                    created_without_key
                        .pop_front()
                        .ok_or(diesel::NotFound)?
                        .into_task_row(task),
                )),
                Some(key) => match created_by_key.remove(&key) {
                    Some(row) => Ok(Inserted::Created(row.into_task_row(task))),
                    None => Ok(Inserted::Existing(
                        existing_by_key.remove(&key).ok_or(diesel::NotFound)?,
                    )),
                },
            },
        )
        .collect()
}

/// What the insert decided for each row of `tasks` it inserted, in id order.
fn insert_rows_skipping_taken_keys(conn: &mut PgConnection, tasks: &[NewTask]) -> QueryResult<Vec<NewRow>> {
    // One statement whatever the batch size: columns travel as arrays, so the text stays
    // the same (and is kept prepared), and the statement-level NOTIFY trigger fires once. Keyed
    // rows go in key order, so concurrent batches sharing keys take their locks in one
    // order and cannot deadlock; rows without a key follow in request order. Without keys
    // there is nothing to conflict on, and ON CONFLICT would still make every row a
    // speculative insertion (a pre-check, and one more WAL record per row).
    let on_conflict = if without_keys(tasks) {
        ""
    } else {
        "ON CONFLICT (idempotency_scope, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING"
    };
    // Only what the database decides comes back. The rest of each row is the submission
    // itself, and sending its payload and a score of columns back for every row would be
    // work on both sides that tells the engine nothing new.
    let mut rows: Vec<NewRow> = Prepared(
        diesel::sql_query(format!(
            "INSERT INTO tasks (task_type, payload, max_attempts, idempotency_key, timeout_ms, \
                            scheduled_for, status, retry_state, type_queue, idempotency_scope, requested_run_at) \
         SELECT item.task_type, item.payload, item.max_attempts, item.idempotency_key, item.timeout_ms, \
                GREATEST(item.run_at, now()), $7, $8, item.type_queue, item.idempotency_scope, item.run_at \
         FROM unnest($1::text[], $2::jsonb[], $3::int4[], $4::text[], $5::int4[], $6::timestamptz[], \
                     $9::bool[], $10::text[]) \
              WITH ORDINALITY AS item(task_type, payload, max_attempts, idempotency_key, timeout_ms, \
                                      run_at, type_queue, idempotency_scope, position) \
         ORDER BY item.idempotency_scope, item.idempotency_key NULLS LAST, item.position \
         {on_conflict} RETURNING id, created_at, scheduled_for, idempotency_scope, idempotency_key"
        ))
        .bind::<Array<Text>, _>(tasks.iter().map(|t| t.task_type.as_str()).collect::<Vec<_>>())
        .bind::<Array<Jsonb>, _>(tasks.iter().map(|t| &t.payload).collect::<Vec<_>>())
        .bind::<Array<Int4>, _>(tasks.iter().map(|t| t.max_attempts).collect::<Vec<_>>())
        .bind::<Array<Nullable<Text>>, _>(
            tasks
                .iter()
                .map(|t| t.idempotency_key.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind::<Array<Int4>, _>(tasks.iter().map(|t| t.timeout_ms).collect::<Vec<_>>())
        .bind::<Array<Nullable<Timestamptz>>, _>(tasks.iter().map(|t| t.run_at).collect::<Vec<_>>())
        .bind::<Text, _>(TaskState::NEW.status.as_str())
        .bind::<Text, _>(TaskState::NEW.retry_state.as_str())
        .bind::<Array<Bool>, _>(tasks.iter().map(|t| t.queue.is_type_queue()).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(tasks.iter().map(|t| t.idempotency_scope.as_str()).collect::<Vec<_>>()),
    )
    .load(conn)?;
    // Rows draw their ids from the sequence in the order they are inserted, so sorting by
    // id puts the keyless rows back in request order whatever order RETURNING used.
    rows.sort_unstable_by_key(|row| row.id);
    Ok(rows)
}
