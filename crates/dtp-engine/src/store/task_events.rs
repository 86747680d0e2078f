//! Queries on `task_events`, the change feed (written by the triggers of the `task_events`
//! migration, never by the engine's code), and on `task_event_horizon`, how far retention
//! has deleted it. Reads return only final events: those of transactions older than any
//! still running.

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

/// The statement of `read_events`, or (with `explain` = `"EXPLAIN "`) its plan.
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
                     COALESCE((SELECT max(b.xact) FROM task_events b) >= x.xmin, false) AS held_back \
                 FROM (SELECT {SNAPSHOT_XMIN} AS xmin) x \
             ), start AS MATERIALIZED ( \
                 SELECT CASE WHEN $5 THEN s.deleted_xact ELSE $1::bigint END AS from_xact, \
                        CASE WHEN $5 THEN s.deleted_position ELSE $2::bigint END AS from_position, s.* \
                 FROM snap s \
             ) \
             SELECT st.xmin AS snapshot_xmin, st.deleted_xact, st.deleted_position, st.held_back, \
                 e.xact, e.position, e.task_id, e.task_type, e.kind, e.status, e.retry_state, \
                 e.attempt, e.at, e.error, e.idempotency_key \
             FROM start st LEFT JOIN LATERAL ( \
                 SELECT * FROM task_events e \
                 WHERE (e.xact, e.position) > (st.from_xact, st.from_position) AND e.xact < st.xmin \
                   AND ($4::text[] IS NULL OR e.task_type = ANY($4)) \
                   AND ($6::text IS NULL OR e.submitted_by = $6) \
                 ORDER BY e.xact, e.position LIMIT $3 \
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

/// Deletes up to `limit` of the oldest final events if they happened before `before`, in
/// feed order, and moves the horizon past them; returns how many went.
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
             SELECT xact, position, at FROM task_events WHERE xact < {SNAPSHOT_XMIN} \
             ORDER BY xact, position LIMIT $2 \
         ), expired AS ( \
             SELECT xact, position FROM head \
             WHERE (xact, position) < COALESCE((SELECT (xact, position) FROM head WHERE at >= $1 \
                                                ORDER BY xact, position LIMIT 1), (9223372036854775807, 0)) \
         ), gone AS ( \
             DELETE FROM task_events e USING expired x WHERE e.xact = x.xact AND e.position = x.position \
             RETURNING e.xact, e.position \
         ), last AS ( \
             SELECT xact, position FROM gone ORDER BY xact DESC, position DESC LIMIT 1 \
         ), moved AS ( \
             UPDATE task_event_horizon h SET xact = last.xact, position = last.position FROM last \
             WHERE (last.xact, last.position) > (h.xact, h.position) \
         ) SELECT count(*) AS deleted FROM gone"
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
