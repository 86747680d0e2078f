//! Queries on `task_event_groups`, the change feed (written by the triggers of the
//! `task_events` migrations, never by the engine's code; a statement's events in one row), and
//! on `task_event_horizon`, how far retention has deleted it. Reads return only final events:
//! those of transactions older than any still running.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bool, Integer, Nullable, Text, Timestamptz};
use service_postgres::prepared::Prepared;

use crate::domain::feed_position::{FeedPosition, PageBounds};

/// The statement's snapshot's oldest running transaction, as the events' `xact` is kept.
const SNAPSHOT_XMIN: &str = "pg_snapshot_xmin(pg_current_snapshot())::text::bigint";

/// One event as stored.
#[derive(Debug, Clone, QueryableByName)]
pub struct EventRow {
    #[diesel(sql_type = BigInt)]
    pub xact: i64,
    #[diesel(sql_type = BigInt)]
    pub position: i64,
    #[diesel(sql_type = BigInt)]
    pub task_id: i64,
    #[diesel(sql_type = Text)]
    pub task_type: String,
    #[diesel(sql_type = Text)]
    pub kind: String,
    #[diesel(sql_type = Text)]
    pub status: String,
    #[diesel(sql_type = Text)]
    pub retry_state: String,
    #[diesel(sql_type = Integer)]
    pub attempt: i32,
    #[diesel(sql_type = Timestamptz)]
    pub at: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Text>)]
    pub error: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub idempotency_key: Option<String>,
}

impl EventRow {
    pub fn feed_position(&self) -> FeedPosition {
        FeedPosition {
            xact: self.xact,
            position: self.position,
        }
    }
}

/// A page of final events and what the read knew about the feed around it.
#[derive(Debug, Clone)]
pub struct EventsRead {
    pub events: Vec<EventRow>,
    pub bounds: PageBounds,
    /// Everything up to here was deleted by retention.
    pub deleted_up_to: FeedPosition,
    /// Events exist past `bounds.final_up_to` that are already committed but held back until
    /// an older transaction ends.
    pub held_back: bool,
}

/// A read's row: the snapshot's facts on every row, one event per row (none on the only
/// row of an empty read).
#[derive(QueryableByName)]
struct ReadRow {
    #[diesel(sql_type = BigInt)]
    snapshot_xmin: i64,
    #[diesel(sql_type = BigInt)]
    deleted_xact: i64,
    #[diesel(sql_type = BigInt)]
    deleted_position: i64,
    #[diesel(sql_type = Bool)]
    held_back: bool,
    #[diesel(sql_type = Nullable<BigInt>)]
    xact: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    position: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    task_id: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    task_type: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    kind: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    status: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    retry_state: Option<String>,
    #[diesel(sql_type = Nullable<Integer>)]
    attempt: Option<i32>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Text>)]
    error: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    idempotency_key: Option<String>,
}

impl ReadRow {
    fn event(self) -> Option<EventRow> {
        Some(EventRow {
            xact: self.xact?,
            position: self.position?,
            task_id: self.task_id?,
            task_type: self.task_type?,
            kind: self.kind?,
            status: self.status?,
            retry_state: self.retry_state?,
            attempt: self.attempt?,
            at: self.at?,
            error: self.error,
            idempotency_key: self.idempotency_key,
        })
    }
}

/// Reads up to `limit` final events after `after` (of the named task types only, when
/// given; of the tasks `submitted_by` submitted, when given), in feed order, in one statement:
/// the events and the bounds come from one snapshot. `after: None` starts after what
/// retention deleted.
pub fn read_events(
    conn: &mut PgConnection,
    after: Option<FeedPosition>,
    limit: i64,
    task_types: Option<&[String]>,
    submitted_by: Option<&str>,
) -> QueryResult<EventsRead> {
    let from = after.unwrap_or(FeedPosition::START);
    let rows: Vec<ReadRow> = Prepared(read_statement(
        "",
        from,
        after.is_none(),
        limit,
        task_types,
        submitted_by,
    ))
    .load(conn)?;
    let first = rows.first().ok_or(diesel::NotFound)?;
    let deleted_up_to = FeedPosition {
        xact: first.deleted_xact,
        position: first.deleted_position,
    };
    let final_up_to = FeedPosition::final_before(first.snapshot_xmin);
    let held_back = first.held_back;
    let events: Vec<EventRow> = rows.into_iter().filter_map(ReadRow::event).collect();
    let bounds = PageBounds {
        after: after.unwrap_or(deleted_up_to),
        last: events.last().map(EventRow::feed_position),
        full: i64::try_from(events.len()).unwrap_or(i64::MAX) >= limit,
        final_up_to,
    };
    Ok(EventsRead {
        events,
        bounds,
        deleted_up_to,
        held_back,
    })
}

/// The most events one group holds: a group's events sit at `position + 0 .. position +
/// events - 1`, so a group that holds events after a position starts less than this before it.
const GROUP_SPAN: i64 = 65_536;

/// The statement of `read_events`, or (with `explain` = `"EXPLAIN "`) its plan.
///
/// Events are stored in groups (one per statement, type and submitter; see the
/// `task_events_by_statement` migration). The read takes up to `limit` groups holding events
/// after the start, in feed order, then as many of them as hold the first `limit` of those
/// events (counted without the first group's events at or before the start), and unnests only
/// those: a page reads at most one group more than it returns.
fn read_statement<'a>(
    explain: &str,
    from: FeedPosition,
    from_oldest: bool,
    limit: i64,
    task_types: Option<&'a [String]>,
    submitted_by: Option<&'a str>,
) -> diesel::query_builder::BoxedSqlQuery<'a, diesel::pg::Pg, diesel::query_builder::SqlQuery> {
    diesel::sql_query(format!(
        "{explain}WITH snap AS MATERIALIZED ( \
                 SELECT x.xmin, \
                     (SELECT h.xact FROM task_event_horizon h) AS deleted_xact, \
                     (SELECT h.position FROM task_event_horizon h) AS deleted_position, \
                     COALESCE((SELECT max(b.xact) FROM task_event_groups b) >= x.xmin, false) AS held_back \
                 FROM (SELECT {SNAPSHOT_XMIN} AS xmin) x \
             ), start AS MATERIALIZED ( \
                 SELECT CASE WHEN $5 THEN s.deleted_xact ELSE $1::bigint END AS from_xact, \
                        CASE WHEN $5 THEN s.deleted_position ELSE $2::bigint END AS from_position, s.* \
                 FROM snap s \
             ), candidates AS MATERIALIZED ( \
                 SELECT g.*, \
                     CASE WHEN g.xact = st.from_xact AND g.position <= st.from_position \
                          THEN st.from_position - g.position + 1 ELSE 0 END AS seen \
                 FROM start st CROSS JOIN LATERAL ( \
                     SELECT * FROM task_event_groups g \
                     WHERE (g.xact, g.position) > (st.from_xact, st.from_position - {GROUP_SPAN} + 1) \
                       AND (g.xact > st.from_xact OR g.position + g.events - 1 > st.from_position) \
                       AND g.xact < st.xmin \
                       AND ($4::text[] IS NULL OR g.task_type = ANY($4)) \
                       AND ($6::text IS NULL OR g.submitted_by = $6) \
                     ORDER BY g.xact, g.position LIMIT $3 \
                 ) g \
             ), taken AS ( \
                 SELECT c.* FROM ( \
                     SELECT c.*, sum(c.events - c.seen) OVER (ORDER BY c.xact, c.position) \
                                 - (c.events - c.seen) AS before \
                     FROM candidates c \
                 ) c WHERE c.before < $3 \
             ) \
             SELECT st.xmin AS snapshot_xmin, st.deleted_xact, st.deleted_position, st.held_back, \
                 e.xact, e.position, e.task_id, e.task_type, e.kind, e.status, e.retry_state, \
                 e.attempt, e.at, e.error, e.idempotency_key \
             FROM start st LEFT JOIN LATERAL ( \
                 SELECT t.xact, t.position + u.ordinal - 1 AS position, u.task_id, t.task_type, u.kind, \
                     u.status, u.retry_state, u.attempt, t.at, u.error, u.idempotency_key \
                 FROM taken t CROSS JOIN LATERAL unnest(t.task_ids, t.kinds, t.statuses, t.retry_states, \
                         t.attempts, t.errors, t.idempotency_keys) \
                     WITH ORDINALITY AS u(task_id, kind, status, retry_state, attempt, error, idempotency_key, ordinal) \
                 WHERE u.ordinal > t.seen \
                 ORDER BY 1, 2 LIMIT $3 \
             ) e ON true \
             ORDER BY e.xact, e.position"
    ))
    .into_boxed()
    .bind::<BigInt, _>(from.xact)
    .bind::<BigInt, _>(from.position)
    .bind::<BigInt, _>(limit)
    .bind::<Nullable<Array<Text>>, _>(task_types)
    .bind::<Bool, _>(from_oldest)
    .bind::<Nullable<Text>, _>(submitted_by)
}

/// The plan Postgres picks for a read of the feed (for the plan checks).
pub fn explain_feed_read(conn: &mut PgConnection) -> QueryResult<String> {
    let lines: Vec<crate::store::tasks::PlanLine> = read_statement(
        "EXPLAIN ",
        FeedPosition::START,
        false,
        1_000,
        None,
        Some("taskpilot"),
    )
    .load(conn)?;
    Ok(crate::store::tasks::plan(lines))
}

/// The end of the feed now: after every final event.
pub fn latest_position(conn: &mut PgConnection) -> QueryResult<FeedPosition> {
    #[derive(QueryableByName)]
    struct Xmin {
        #[diesel(sql_type = BigInt)]
        xmin: i64,
    }
    let row: Xmin = diesel::sql_query(format!("SELECT {SNAPSHOT_XMIN} AS xmin")).get_result(conn)?;
    Ok(FeedPosition::final_before(row.xmin))
}

/// Deletes about `limit` of the oldest final events if they happened before `before`, in
/// feed order, whole groups at a time (at least one, however many it holds), and moves the
/// horizon past them; returns how many events went.
pub fn delete_events_before(
    conn: &mut PgConnection,
    before: DateTime<Utc>,
    limit: i64,
) -> QueryResult<usize> {
    #[derive(QueryableByName)]
    struct Deleted {
        #[diesel(sql_type = BigInt)]
        deleted: i64,
    }
    let row: Deleted = diesel::sql_query(format!(
        "WITH head AS ( \
             SELECT xact, position, events, at, \
                 sum(events) OVER (ORDER BY xact, position) - events AS before \
             FROM (SELECT xact, position, events, at FROM task_event_groups WHERE xact < {SNAPSHOT_XMIN} \
                   ORDER BY xact, position LIMIT $2) h \
         ), expired AS ( \
             SELECT xact, position FROM head \
             WHERE before < $2 \
               AND (xact, position) < COALESCE((SELECT (xact, position) FROM head WHERE at >= $1 \
                                                ORDER BY xact, position LIMIT 1), (9223372036854775807, 0)) \
         ), gone AS ( \
             DELETE FROM task_event_groups e USING expired x WHERE e.xact = x.xact AND e.position = x.position \
             RETURNING e.xact, e.position + e.events - 1 AS last_position, e.events \
         ), last AS ( \
             SELECT xact, last_position FROM gone ORDER BY xact DESC, last_position DESC LIMIT 1 \
         ), moved AS ( \
             UPDATE task_event_horizon h SET xact = last.xact, position = last.last_position FROM last \
             WHERE (last.xact, last.last_position) > (h.xact, h.position) \
         ) SELECT COALESCE(sum(events), 0)::bigint AS deleted FROM gone"
    ))
    .bind::<Timestamptz, _>(before)
    .bind::<BigInt, _>(limit)
    .get_result(conn)?;
    Ok(usize::try_from(row.deleted).unwrap_or(0))
}

/// Tells every engine listening that events were written.
pub fn announce_events(conn: &mut PgConnection) -> QueryResult<()> {
    diesel::sql_query("SELECT pg_notify('dtp_task_events', '')")
        .execute(conn)
        .map(|_| ())
}
