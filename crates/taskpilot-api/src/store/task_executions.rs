//! Queries on `task_executions` (the mirrored execution of each scheduler task), on
//! `execution_events` (every event the follower applied) and on `feed_positions` (where the
//! follower is). A page of the feed is applied in one transaction with the position it moves
//! to, and only if the position is still the one it was read from: a page is applied once.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Int4, Nullable, Text, Timestamptz};
use dtp_contract::{ChangeEvent, RetryState, TaskStatus};
use std::collections::HashMap;

use super::schema::{execution_events, feed_positions, task_executions, web_tasks};
use super::StoreError;
use crate::domain::binding::web_task_of_key;
use crate::domain::ExecutionRecord;

/// One row of `task_executions`.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = task_executions)]
#[diesel(check_for_backend(diesel::pg::Pg))]
pub struct ExecutionRow {
    pub scheduler_task_id: i64,
    pub web_task_id: Option<i64>,
    pub tenant: Option<String>,
    pub status: String,
    pub retry_state: String,
    pub attempt_count: i32,
    pub max_attempts: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub synced_at: DateTime<Utc>,
}

impl ExecutionRow {
    pub fn record(&self) -> Result<ExecutionRecord, StoreError> {
        let corrupt = |what: &str, value: &str| {
            StoreError::CorruptRow(format!(
                "execution of scheduler task {} has {what} {value:?}",
                self.scheduler_task_id
            ))
        };
        Ok(ExecutionRecord {
            scheduler_task_id: self.scheduler_task_id,
            status: TaskStatus::parse(&self.status).ok_or_else(|| corrupt("status", &self.status))?,
            retry_state: RetryState::parse(&self.retry_state)
                .ok_or_else(|| corrupt("retry state", &self.retry_state))?,
            attempt_count: self.attempt_count,
            max_attempts: self.max_attempts,
            last_error: self.last_error.clone(),
            created_at: self.created_at,
            started_at: self.started_at,
            completed_at: self.completed_at,
        })
    }
}

/// The records as the statements' array parameters.
struct RecordColumns<'a> {
    ids: Vec<i64>,
    statuses: Vec<&'static str>,
    retry_states: Vec<&'static str>,
    attempts: Vec<i32>,
    max_attempts: Vec<Option<i32>>,
    errors: Vec<Option<&'a str>>,
    created: Vec<Option<DateTime<Utc>>>,
    started: Vec<Option<DateTime<Utc>>>,
    completed: Vec<Option<DateTime<Utc>>>,
}

impl<'a> RecordColumns<'a> {
    fn of(records: impl Iterator<Item = &'a ExecutionRecord>) -> Self {
        let mut c = RecordColumns {
            ids: Vec::new(),
            statuses: Vec::new(),
            retry_states: Vec::new(),
            attempts: Vec::new(),
            max_attempts: Vec::new(),
            errors: Vec::new(),
            created: Vec::new(),
            started: Vec::new(),
            completed: Vec::new(),
        };
        for r in records {
            c.ids.push(r.scheduler_task_id);
            c.statuses.push(r.status.as_str());
            c.retry_states.push(r.retry_state.as_str());
            c.attempts.push(r.attempt_count);
            c.max_attempts.push(r.max_attempts);
            c.errors.push(r.last_error.as_deref());
            c.created.push(r.created_at);
            c.started.push(r.started_at);
            c.completed.push(r.completed_at);
        }
        c
    }
}

/// The executions of these scheduler tasks (those TaskPilot knows).
pub fn executions_of(conn: &mut PgConnection, scheduler_task_ids: &[i64]) -> QueryResult<Vec<ExecutionRow>> {
    task_executions::table
        .filter(task_executions::scheduler_task_id.eq_any(scheduler_task_ids))
        .select(ExecutionRow::as_select())
        .load(conn)
}

/// The web task (and its tenant) a scheduler task belongs to, by scheduler task id.
pub type Links = HashMap<i64, (i64, String)>;

/// Writes the state of each record (a new row for a task not known yet), and the link to its
/// web task where `links` has one and the row has none. A link already there, and what only
/// the scheduler's task tells (`max_attempts`, `created_at`), are kept.
pub fn write_states(
    conn: &mut PgConnection,
    records: &[ExecutionRecord],
    links: &Links,
) -> QueryResult<usize> {
    let c = RecordColumns::of(records.iter());
    let link = |id: &i64| links.get(id);
    let web_task_ids: Vec<Option<i64>> = c.ids.iter().map(|id| link(id).map(|(w, _)| *w)).collect();
    let tenants: Vec<Option<&str>> = c.ids.iter().map(|id| link(id).map(|(_, t)| t.as_str())).collect();
    diesel::sql_query(
        "INSERT INTO task_executions (scheduler_task_id, status, retry_state, attempt_count, max_attempts, \
             last_error, created_at, started_at, completed_at, web_task_id, tenant, synced_at) \
         SELECT r.*, now() FROM unnest($1::bigint[], $2::text[], $3::text[], $4::int4[], $5::int4[], \
             $6::text[], $7::timestamptz[], $8::timestamptz[], $9::timestamptz[], $10::bigint[], $11::text[]) \
             AS r(scheduler_task_id, status, retry_state, attempt_count, max_attempts, last_error, \
                  created_at, started_at, completed_at, web_task_id, tenant) \
         ON CONFLICT (scheduler_task_id) DO UPDATE SET status = EXCLUDED.status, \
             retry_state = EXCLUDED.retry_state, attempt_count = EXCLUDED.attempt_count, \
             max_attempts = COALESCE(EXCLUDED.max_attempts, task_executions.max_attempts), \
             last_error = EXCLUDED.last_error, \
             created_at = COALESCE(EXCLUDED.created_at, task_executions.created_at), \
             started_at = EXCLUDED.started_at, completed_at = EXCLUDED.completed_at, \
             web_task_id = COALESCE(task_executions.web_task_id, EXCLUDED.web_task_id), \
             tenant = COALESCE(task_executions.tenant, EXCLUDED.tenant), synced_at = now()",
    )
    .bind::<Array<BigInt>, _>(&c.ids)
    .bind::<Array<Text>, _>(&c.statuses)
    .bind::<Array<Text>, _>(&c.retry_states)
    .bind::<Array<Int4>, _>(&c.attempts)
    .bind::<Array<Nullable<Int4>>, _>(&c.max_attempts)
    .bind::<Array<Nullable<Text>>, _>(&c.errors)
    .bind::<Array<Nullable<Timestamptz>>, _>(&c.created)
    .bind::<Array<Nullable<Timestamptz>>, _>(&c.started)
    .bind::<Array<Nullable<Timestamptz>>, _>(&c.completed)
    .bind::<Array<Nullable<BigInt>>, _>(&web_task_ids)
    .bind::<Array<Nullable<Text>>, _>(&tenants)
    .execute(conn)
}

/// The SQL that links bound web tasks to their executions inside the bind statement: a CTE
/// `linked` over `bound` (the web tasks the bind wrote: `id`, `scheduler_task_id`, `tenant`)
/// and the bind's parameters `$5`.. as `RecordColumns` (shifted by four). A state the follower
/// wrote first is kept: it is newer than the scheduler's answer to the bind. Rows are
/// written in scheduler task order, as the follower writes them, so the two never deadlock.
pub(super) const LINK_BOUND_SQL: &str = "linked AS ( \
     INSERT INTO task_executions (scheduler_task_id, web_task_id, tenant, status, retry_state, \
         attempt_count, max_attempts, last_error, created_at, started_at, completed_at, synced_at) \
     SELECT bound.scheduler_task_id, bound.id, bound.tenant, r.status, r.retry_state, r.attempt_count, \
            r.max_attempts, r.last_error, r.created_at, r.started_at, r.completed_at, now() \
     FROM bound JOIN unnest($5::bigint[], $6::text[], $7::text[], $8::int4[], $9::int4[], $10::text[], \
                            $11::timestamptz[], $12::timestamptz[], $13::timestamptz[]) \
          AS r(scheduler_task_id, status, retry_state, attempt_count, max_attempts, last_error, \
               created_at, started_at, completed_at) ON r.scheduler_task_id = bound.scheduler_task_id \
     ORDER BY bound.scheduler_task_id \
     ON CONFLICT (scheduler_task_id) DO UPDATE SET web_task_id = EXCLUDED.web_task_id, \
         tenant = EXCLUDED.tenant, \
         max_attempts = COALESCE(task_executions.max_attempts, EXCLUDED.max_attempts), \
         created_at = COALESCE(task_executions.created_at, EXCLUDED.created_at) \
 )";

/// Binds the records of a bind statement as its parameters `$5`..`$13`.
pub(super) fn bind_link_columns<'a>(
    query: diesel::query_builder::BoxedSqlQuery<'a, diesel::pg::Pg, diesel::query_builder::SqlQuery>,
    records: impl Iterator<Item = &'a ExecutionRecord>,
) -> diesel::query_builder::BoxedSqlQuery<'a, diesel::pg::Pg, diesel::query_builder::SqlQuery> {
    let c = RecordColumns::of(records);
    query
        .bind::<Array<BigInt>, _>(c.ids)
        .bind::<Array<Text>, _>(c.statuses)
        .bind::<Array<Text>, _>(c.retry_states)
        .bind::<Array<Int4>, _>(c.attempts)
        .bind::<Array<Nullable<Int4>>, _>(c.max_attempts)
        .bind::<Array<Nullable<Text>>, _>(c.errors)
        .bind::<Array<Nullable<Timestamptz>>, _>(c.created)
        .bind::<Array<Nullable<Timestamptz>>, _>(c.started)
        .bind::<Array<Nullable<Timestamptz>>, _>(c.completed)
}

/// Writes what a reconcile read from the scheduler for bound web tasks: the whole record,
/// and the link to its web task (a task bound before TaskPilot kept executions has none yet).
pub fn write_reconciled(
    conn: &mut PgConnection,
    reconciled: &[(UnfinishedBinding, ExecutionRecord)],
) -> QueryResult<usize> {
    conn.transaction(|conn| {
        let statement = diesel::sql_query(format!(
            "WITH bound AS ( \
                 SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[]) AS b(id, scheduler_task_id, tenant) \
             ), {LINK_BOUND_SQL} SELECT $4::int4 AS unused"
        ))
        .into_boxed()
        .bind::<Array<BigInt>, _>(reconciled.iter().map(|(b, _)| b.web_task_id).collect::<Vec<_>>())
        .bind::<Array<BigInt>, _>(reconciled.iter().map(|(b, _)| b.scheduler_task_id).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(reconciled.iter().map(|(b, _)| b.tenant.clone()).collect::<Vec<_>>())
        .bind::<Int4, _>(0);
        bind_link_columns(statement, reconciled.iter().map(|(_, r)| r)).execute(conn)?;
        let records: Vec<ExecutionRecord> = reconciled.iter().map(|(_, r)| r.clone()).collect();
        write_states(conn, &records, &Links::new())
    })
}

/// Where the follower of `feed` is; `None` before it first reconciled.
pub fn feed_position(conn: &mut PgConnection, feed: &str) -> QueryResult<Option<String>> {
    feed_positions::table
        .find(feed)
        .select(feed_positions::cursor)
        .first(conn)
        .optional()
}

/// Moves the follower of `feed` to `next` if it is still at `expected` (`None`: nowhere yet).
pub fn move_feed_position(
    conn: &mut PgConnection,
    feed: &str,
    expected: Option<&str>,
    next: &str,
) -> QueryResult<bool> {
    let moved = match expected {
        None => diesel::insert_into(feed_positions::table)
            .values((feed_positions::feed.eq(feed), feed_positions::cursor.eq(next)))
            .on_conflict_do_nothing()
            .execute(conn)?,
        Some(expected) => diesel::update(
            feed_positions::table
                .filter(feed_positions::feed.eq(feed))
                .filter(feed_positions::cursor.eq(expected)),
        )
        .set((
            feed_positions::cursor.eq(next),
            feed_positions::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)?,
    };
    Ok(moved == 1)
}

/// Applies a page of the feed read from `after`: each event to its task's record, in order,
/// each kept in `execution_events`, and the position moved to `next`, in one transaction.
/// False (nothing written) when the position is no longer `after`: another follower applied
/// the page, or a reconcile moved on.
pub fn apply_feed_page(
    conn: &mut PgConnection,
    feed: &str,
    after: &str,
    events: &[ChangeEvent],
    next: &str,
) -> Result<bool, StoreError> {
    conn.transaction(|conn| {
        let at: Option<String> = feed_positions::table
            .find(feed)
            .select(feed_positions::cursor)
            .for_update()
            .first(conn)
            .optional()?;
        if at.as_deref() != Some(after) {
            return Ok(false);
        }
        if !events.is_empty() {
            let ids: Vec<i64> = events.iter().map(|e| e.task_id).collect();
            let known: Vec<ExecutionRow> = task_executions::table
                .filter(task_executions::scheduler_task_id.eq_any(&ids))
                .select(ExecutionRow::as_select())
                .load(conn)?;
            let mut records: HashMap<i64, ExecutionRecord> = HashMap::with_capacity(known.len());
            for row in &known {
                records.insert(row.scheduler_task_id, row.record()?);
            }
            for event in events {
                let next = match records.remove(&event.task_id) {
                    Some(record) => record.after(event),
                    None => ExecutionRecord::first_heard(event),
                };
                records.insert(event.task_id, next);
            }
            let links = links_of_unlinked(conn, &known, events)?;
            let mut records: Vec<ExecutionRecord> = records.into_values().collect();
            // The rows are read unlocked: only the follower writes their state (the position's
            // lock keeps it alone), a bind writes only their link. They are locked by the
            // write alone, in one order for every writer: no deadlock with a bind.
            records.sort_unstable_by_key(|r| r.scheduler_task_id);
            write_states(conn, &records, &links)?;
            insert_events(conn, events)?;
        }
        diesel::update(feed_positions::table.find(feed))
            .set((
                feed_positions::cursor.eq(next),
                feed_positions::updated_at.eq(diesel::dsl::now),
            ))
            .execute(conn)?;
        Ok(true)
    })
}

/// The web tasks of the events' scheduler tasks that are not linked yet, named by their
/// idempotency keys: a task is linked from its first event on, not only once its bind has
/// committed (which may come later), so that no event is applied unlinked.
fn links_of_unlinked(
    conn: &mut PgConnection,
    known: &[ExecutionRow],
    events: &[ChangeEvent],
) -> QueryResult<Links> {
    let linked: HashMap<i64, bool> = known
        .iter()
        .map(|r| (r.scheduler_task_id, r.web_task_id.is_some()))
        .collect();
    let named: HashMap<i64, i64> = events
        .iter()
        .filter(|e| !linked.get(&e.task_id).copied().unwrap_or(false))
        .filter_map(|e| Some((e.task_id, web_task_of_key(e.idempotency_key.as_deref()?)?)))
        .collect();
    if named.is_empty() {
        return Ok(Links::new());
    }
    let web_ids: Vec<i64> = named.values().copied().collect();
    let tenants: HashMap<i64, String> = web_tasks::table
        .filter(web_tasks::id.eq_any(&web_ids))
        .select((web_tasks::id, web_tasks::tenant))
        .load::<(i64, String)>(conn)?
        .into_iter()
        .collect();
    Ok(named
        .into_iter()
        .filter_map(|(task, web)| Some((task, (web, tenants.get(&web)?.clone()))))
        .collect())
}

fn insert_events(conn: &mut PgConnection, events: &[ChangeEvent]) -> QueryResult<usize> {
    diesel::sql_query(
        "INSERT INTO execution_events (cursor, scheduler_task_id, kind, status, retry_state, attempt, at, error) \
         SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::int4[], \
                              $7::timestamptz[], $8::text[]) \
         ON CONFLICT (cursor) DO NOTHING",
    )
    .bind::<Array<Text>, _>(events.iter().map(|e| e.cursor.as_str()).collect::<Vec<_>>())
    .bind::<Array<BigInt>, _>(events.iter().map(|e| e.task_id).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(events.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(events.iter().map(|e| e.status.as_str()).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(events.iter().map(|e| e.retry_state.as_str()).collect::<Vec<_>>())
    .bind::<Array<Int4>, _>(events.iter().map(|e| e.attempt).collect::<Vec<_>>())
    .bind::<Array<Timestamptz>, _>(events.iter().map(|e| e.at).collect::<Vec<_>>())
    .bind::<Array<Nullable<Text>>, _>(events.iter().map(|e| e.error.as_deref()).collect::<Vec<_>>())
    .execute(conn)
}

/// A bound web task whose execution may still change: what a reconcile re-reads.
#[derive(Debug, Clone, QueryableByName)]
pub struct UnfinishedBinding {
    #[diesel(sql_type = BigInt)]
    pub web_task_id: i64,
    #[diesel(sql_type = BigInt)]
    pub scheduler_task_id: i64,
    #[diesel(sql_type = Text)]
    pub tenant: String,
}

/// Up to `limit` bound web tasks after `after_id` whose mirrored execution is not finished
/// (or not known at all), by web task id.
pub fn unfinished_bindings(
    conn: &mut PgConnection,
    after_id: i64,
    limit: i64,
) -> QueryResult<Vec<UnfinishedBinding>> {
    diesel::sql_query(
        "SELECT w.id AS web_task_id, w.scheduler_task_id, w.tenant FROM web_tasks w \
         LEFT JOIN task_executions e ON e.scheduler_task_id = w.scheduler_task_id \
         WHERE w.scheduler_task_id IS NOT NULL AND w.id > $1 \
           AND (e.status IS NULL OR e.status NOT IN ('SUCCEEDED', 'FAILED', 'CANCELED')) \
         ORDER BY w.id LIMIT $2",
    )
    .bind::<BigInt, _>(after_id)
    .bind::<BigInt, _>(limit)
    .load(conn)
}

/// One applied event as kept, with the web task it belongs to.
#[derive(Debug, Clone, QueryableByName)]
pub struct StoredEvent {
    #[diesel(sql_type = BigInt)]
    pub seq: i64,
    #[diesel(sql_type = Text)]
    pub cursor: String,
    #[diesel(sql_type = BigInt)]
    pub scheduler_task_id: i64,
    #[diesel(sql_type = Text)]
    pub scheduler_type: String,
    #[diesel(sql_type = BigInt)]
    pub web_task_id: i64,
    #[diesel(sql_type = Text)]
    pub kind: String,
    #[diesel(sql_type = Text)]
    pub status: String,
    #[diesel(sql_type = Text)]
    pub retry_state: String,
    #[diesel(sql_type = Int4)]
    pub attempt: i32,
    #[diesel(sql_type = Timestamptz)]
    pub at: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Text>)]
    pub error: Option<String>,
}

/// Up to `limit` applied events after `after_seq` of `tenant`'s bound web tasks (of one
/// scheduler task only, when given), in the order they were applied.
pub fn events_after(
    conn: &mut PgConnection,
    tenant: &str,
    scheduler_task_id: Option<i64>,
    after_seq: i64,
    limit: i64,
) -> QueryResult<Vec<StoredEvent>> {
    diesel::sql_query(
        "SELECT v.seq, v.cursor, v.scheduler_task_id, w.scheduler_type, e.web_task_id, v.kind, v.status, \
                v.retry_state, v.attempt, v.at, v.error \
         FROM execution_events v \
         JOIN task_executions e ON e.scheduler_task_id = v.scheduler_task_id \
         JOIN web_tasks w ON w.id = e.web_task_id \
         WHERE e.tenant = $1 AND v.seq > $2 AND ($4::bigint IS NULL OR v.scheduler_task_id = $4) \
         ORDER BY v.seq LIMIT $3",
    )
    .bind::<Text, _>(tenant)
    .bind::<BigInt, _>(after_seq)
    .bind::<BigInt, _>(limit)
    .bind::<Nullable<BigInt>, _>(scheduler_task_id)
    .load(conn)
}

/// The place in `execution_events` of the event with this cursor, if it was applied.
pub fn seq_of_cursor(conn: &mut PgConnection, cursor: &str) -> QueryResult<Option<i64>> {
    execution_events::table
        .filter(execution_events::cursor.eq(cursor))
        .select(execution_events::seq)
        .first(conn)
        .optional()
}

/// The place of the last applied event (0 when none).
pub fn last_seq(conn: &mut PgConnection) -> QueryResult<i64> {
    execution_events::table
        .select(diesel::dsl::max(execution_events::seq))
        .first::<Option<i64>>(conn)
        .map(|seq| seq.unwrap_or(0))
}

/// Deletes up to `limit` of the oldest applied events if TaskPilot wrote them before
/// `before`; returns how many went. (`seq` and `applied_at` grow together: one follower writes.)
pub fn delete_events_applied_before(
    conn: &mut PgConnection,
    before: DateTime<Utc>,
    limit: i64,
) -> QueryResult<usize> {
    diesel::sql_query(
        "DELETE FROM execution_events WHERE seq IN ( \
             SELECT seq FROM execution_events ORDER BY seq LIMIT $2 \
         ) AND applied_at < $1",
    )
    .bind::<Timestamptz, _>(before)
    .bind::<BigInt, _>(limit)
    .execute(conn)
}
