//! Group commit: callers hand one item each to a writer task and wait for its result; the
//! writer takes everything waiting (at least one item, at most a group) and writes it in
//! one go. Under load one round trip and one WAL flush serve many callers, and groups grow
//! by themselves while a write is under way; an idle caller waits for no timer. Reads of
//! single rows use the same loop: one select answers every read waiting. The queue holds a
//! few groups at most: past that, callers wait to join it (backpressure), not memory.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;

use diesel::{PgConnection, QueryResult};
use tokio::sync::{mpsc, oneshot};

use crate::database::{run, run_then_close, PgPool, StoreError};

/// A statement carrying more than this leaves its connection with buffers of that size
/// (libpq never shrinks them), so the connection is closed after it rather than pooled.
pub const CLOSE_CONNECTION_AFTER_BYTES: usize = 512 * 1024;

/// Bytes of payload a group of writes carries at most, by default.
pub const DEFAULT_GROUP_BYTES: usize = 4 * 1024 * 1024;

/// Full groups the queue holds before callers wait to join it: enough for the next group to
/// be ready while one is written, not so many that a stalled database gathers every request.
const QUEUED_GROUPS: usize = 4;

/// How large a group may grow: in items, and in the bytes its items carry (a group always
/// takes at least one item). Groups of small items grow to the item cap; a few large
/// payloads make a group of their own instead of one statement of many megabytes.
#[derive(Debug)]
pub struct GroupSize<I> {
    pub items: usize,
    pub bytes: usize,
    pub bytes_of: fn(&I) -> usize,
}

impl<I> Clone for GroupSize<I> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<I> Copy for GroupSize<I> {}

impl<I> GroupSize<I> {
    /// At most `items` items and `bytes` bytes as `bytes_of` counts them.
    pub fn weighed(items: usize, bytes: usize, bytes_of: fn(&I) -> usize) -> Self {
        Self {
            items: items.max(1),
            bytes,
            bytes_of,
        }
    }
}

impl<I> From<usize> for GroupSize<I> {
    /// At most this many items, of any size.
    fn from(items: usize) -> Self {
        Self::weighed(items, usize::MAX, |_| 0)
    }
}

/// What a group write returns: one result per item, in the items' order.
pub type GroupWrite<O> = Pin<Box<dyn Future<Output = Vec<Result<O, StoreError>>> + Send>>;

struct Waiting<I, O> {
    item: I,
    answer: oneshot::Sender<Result<O, StoreError>>,
}

/// The callers' handle. Cheap to clone; the writer stops with the last clone.
pub struct GroupCommit<I, O> {
    queue: mpsc::Sender<Waiting<I, O>>,
    name: &'static str,
}

impl<I, O> Clone for GroupCommit<I, O> {
    fn clone(&self) -> Self {
        Self {
            queue: self.queue.clone(),
            name: self.name,
        }
    }
}

impl<I: Send + 'static, O: Send + 'static> GroupCommit<I, O> {
    /// Starts the writer on the current runtime; `write` gets each group and must answer
    /// every item of it.
    pub fn start<W>(name: &'static str, size: impl Into<GroupSize<I>>, write: W) -> Self
    where
        W: Fn(Vec<I>) -> GroupWrite<O> + Send + 'static,
    {
        let size = size.into();
        let (queue, waiting) = mpsc::channel(size.items.saturating_mul(QUEUED_GROUPS));
        tokio::spawn(write_groups(waiting, size, write));
        Self { queue, name }
    }

    /// Writes `item` with the next group and returns its result; waits first for room in
    /// the queue when it is full.
    pub async fn submit(&self, item: I) -> Result<O, StoreError> {
        let (answer, result) = oneshot::channel();
        let stopped = || StoreError::Unavailable(format!("the {} has stopped", self.name));
        self.queue
            .send(Waiting { item, answer })
            .await
            .map_err(|_| stopped())?;
        result.await.unwrap_or_else(|_| Err(stopped()))
    }
}

impl<I: Clone + Send + Sync + 'static, O: Send + 'static> GroupCommit<I, O> {
    /// Starts a writer that runs each group on `pool` as one statement with `write`, in halves
    /// down to the failing item when that fails (`write_isolating_failures`).
    pub fn start_statements(
        name: &'static str,
        size: impl Into<GroupSize<I>>,
        pool: PgPool,
        write: fn(&mut PgConnection, &[I]) -> QueryResult<Vec<O>>,
    ) -> Self {
        let size = size.into();
        Self::start(name, size, move |items| {
            let pool = pool.clone();
            Box::pin(async move { write_isolating_failures(&pool, items, write, size.bytes_of).await })
        })
    }

    /// As `start_statements`, for statements that write one row per key: a group runs in
    /// rounds in which no two items share a key (`write_in_rounds_by_key`).
    pub fn start_keyed_statements<K: Eq + std::hash::Hash + Send + 'static>(
        name: &'static str,
        size: impl Into<GroupSize<I>>,
        pool: PgPool,
        key: fn(&I) -> Option<K>,
        write: fn(&mut PgConnection, &[I]) -> QueryResult<Vec<O>>,
    ) -> Self {
        let size = size.into();
        Self::start(name, size, move |items| {
            let pool = pool.clone();
            Box::pin(async move { write_in_rounds_by_key(&pool, items, key, write, size.bytes_of).await })
        })
    }
}

async fn write_groups<I, O, W>(mut waiting: mpsc::Receiver<Waiting<I, O>>, size: GroupSize<I>, write: W)
where
    W: Fn(Vec<I>) -> GroupWrite<O>,
{
    // An item that would have made the last group too heavy opens the next one.
    let mut carried: Option<Waiting<I, O>> = None;
    loop {
        let first = match carried.take() {
            Some(first) => first,
            None => match waiting.recv().await {
                Some(first) => first,
                None => return,
            },
        };
        let mut bytes = (size.bytes_of)(&first.item);
        let mut group = vec![first];
        while group.len() < size.items {
            let Ok(next) = waiting.try_recv() else { break };
            let next_bytes = (size.bytes_of)(&next.item);
            if bytes.saturating_add(next_bytes) > size.bytes {
                carried = Some(next);
                break;
            }
            bytes += next_bytes;
            group.push(next);
        }
        let (items, answers): (Vec<I>, Vec<_>) = group.into_iter().map(|w| (w.item, w.answer)).unzip();
        let expected = items.len();
        let mut results = write(items).await.into_iter();
        for answer in answers {
            let result = results.next().unwrap_or_else(|| {
                Err(StoreError::CorruptRow(format!(
                    "a group write answered fewer than its {expected} items"
                )))
            });
            let _ = answer.send(result);
        }
    }
}

/// Writes `items` in one go with `write`, which answers each item in order. When that fails
/// for a reason other than the database being unavailable (which every item shares), each
/// half is written again, and so on down to single items: a bad item fails alone, and the
/// others of its group pay a few statements (two per halving) rather than one each. The
/// connection is closed after a statement whose items carry more than
/// `CLOSE_CONNECTION_AFTER_BYTES` as `bytes_of` counts them.
async fn write_isolating_failures<I, O>(
    pool: &PgPool,
    items: Vec<I>,
    write: fn(&mut PgConnection, &[I]) -> QueryResult<Vec<O>>,
    bytes_of: fn(&I) -> usize,
) -> Vec<Result<O, StoreError>>
where
    I: Send + Sync + 'static,
    O: Send + 'static,
{
    let items = std::sync::Arc::new(items);
    let mut answers: Vec<Option<Result<O, StoreError>>> = items.iter().map(|_| None).collect();
    // Parts still to write, as ranges of `items`: the whole group first.
    let mut parts: Vec<std::ops::Range<usize>> = Vec::new();
    parts.push(0..items.len());
    while let Some(part) = parts.pop() {
        let size = part.len();
        let bytes: usize = items[part.clone()].iter().map(bytes_of).sum();
        let (chunk, range) = (std::sync::Arc::clone(&items), part.clone());
        let statement = move |conn: &mut PgConnection| write(conn, &chunk[range]);
        let written = if bytes > CLOSE_CONNECTION_AFTER_BYTES {
            run_then_close(pool, statement).await
        } else {
            run(pool, statement).await
        };
        match written {
            Ok(written) if written.len() == size => {
                for (slot, answer) in part.zip(written) {
                    answers[slot] = Some(Ok(answer));
                }
            }
            Ok(_) => {
                for slot in part {
                    answers[slot] = Some(Err(StoreError::CorruptRow(format!(
                        "a group write of {size} items answered another number"
                    ))));
                }
            }
            Err(StoreError::Unavailable(reason)) => {
                for slot in part {
                    answers[slot] = Some(Err(StoreError::Unavailable(reason.clone())));
                }
            }
            Err(e) if size == 1 => answers[part.start] = Some(Err(e)),
            Err(e) => {
                tracing::warn!(error = %e, items = size, "group write failed; writing each half again");
                let middle = part.start + size / 2;
                parts.push(middle..part.end);
                parts.push(part.start..middle);
            }
        }
    }
    answers
        .into_iter()
        .map(|answer| {
            answer.unwrap_or_else(|| Err(StoreError::CorruptRow("an item was never written".into())))
        })
        .collect()
}

/// Writes `items` in rounds in which no two items share a key (items without one all go in
/// the first round), each round with `write_isolating_failures`: one statement writes a
/// keyed row once, so a repeat waits for the next round, where it finds what the first wrote.
/// Answers in the items' order.
async fn write_in_rounds_by_key<I, O, K>(
    pool: &PgPool,
    items: Vec<I>,
    key: fn(&I) -> Option<K>,
    write: fn(&mut PgConnection, &[I]) -> QueryResult<Vec<O>>,
    bytes_of: fn(&I) -> usize,
) -> Vec<Result<O, StoreError>>
where
    I: Clone + Send + Sync + 'static,
    O: Send + 'static,
    K: Eq + std::hash::Hash + Send,
{
    let mut answers: Vec<Option<Result<O, StoreError>>> = items.iter().map(|_| None).collect();
    let mut left: Vec<usize> = (0..items.len()).collect();
    while !left.is_empty() {
        let mut keys = HashSet::new();
        let (round, later): (Vec<usize>, Vec<usize>) = left
            .into_iter()
            .partition(|&i| key(&items[i]).is_none_or(|k| keys.insert(k)));
        let round_items: Vec<I> = round.iter().map(|&i| items[i].clone()).collect();
        for (i, answer) in round
            .iter()
            .zip(write_isolating_failures(pool, round_items, write, bytes_of).await)
        {
            answers[*i] = Some(answer);
        }
        left = later;
    }
    answers
        .into_iter()
        .map(|a| {
            a.unwrap_or_else(|| {
                Err(StoreError::CorruptRow(
                    "a group write left an item unanswered".into(),
                ))
            })
        })
        .collect()
}

/// One answer per requested id, in the ids' order: the row with that id, if any. For group
/// statements that read or write rows by id and return them in no particular order.
pub fn rows_in_order_of<R: Clone>(ids: &[i64], rows: Vec<R>, id_of: fn(&R) -> i64) -> Vec<Option<R>> {
    let found: std::collections::HashMap<i64, R> = rows.into_iter().map(|row| (id_of(&row), row)).collect();
    ids.iter().map(|id| found.get(id).cloned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_caller_gets_the_answer_to_its_own_item() {
        let doubler = GroupCommit::start("doubler", 3, |items: Vec<i32>| -> GroupWrite<i32> {
            Box::pin(async move { items.into_iter().map(|i| Ok(i * 2)).collect() })
        });
        let calls = (0..10).map(|i| {
            let doubler = doubler.clone();
            tokio::spawn(async move { doubler.submit(i).await })
        });
        for (i, call) in calls.enumerate() {
            assert_eq!(call.await.unwrap().unwrap(), i as i32 * 2);
        }
    }

    #[tokio::test]
    async fn a_group_carries_at_most_its_bytes_unless_one_item_alone_is_larger() {
        let groups = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Vec<usize>>::new()));
        let seen = std::sync::Arc::clone(&groups);
        let size = GroupSize::weighed(100, 10, |bytes: &usize| *bytes);
        let writer = GroupCommit::start("weigher", size, move |items: Vec<usize>| -> GroupWrite<usize> {
            seen.lock().unwrap().push(items.clone());
            Box::pin(async move { items.into_iter().map(Ok).collect() })
        });
        // Queued before the writer first runs (the test's runtime has one thread).
        let calls: Vec<_> = [6, 3, 6, 1, 9, 12, 2, 2]
            .into_iter()
            .map(|bytes| {
                let writer = writer.clone();
                tokio::spawn(async move { writer.submit(bytes).await })
            })
            .collect();
        for call in calls {
            call.await.unwrap().unwrap();
        }
        let groups = groups.lock().unwrap().clone();
        assert_eq!(
            groups,
            vec![vec![6, 3], vec![6, 1], vec![9], vec![12], vec![2, 2]]
        );
    }

    #[tokio::test]
    async fn a_short_answer_is_an_error_for_the_unanswered_not_a_hang() {
        let short = GroupCommit::start("short", 10, |items: Vec<i32>| -> GroupWrite<i32> {
            Box::pin(async move { items.into_iter().skip(1).map(Ok).collect() })
        });
        assert!(short.submit(1).await.is_err());
    }

    #[tokio::test]
    async fn a_full_queue_makes_callers_wait_for_room_and_loses_none() {
        let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(0));
        let held = std::sync::Arc::clone(&gate);
        let writer = GroupCommit::start("gated", 1, move |items: Vec<i32>| -> GroupWrite<i32> {
            let held = std::sync::Arc::clone(&held);
            Box::pin(async move {
                held.acquire().await.unwrap().forget();
                items.into_iter().map(Ok).collect()
            })
        });
        // One item in the write the gate holds, `QUEUED_GROUPS` queued, two waiting for room.
        let calls: Vec<_> = (0..QUEUED_GROUPS as i32 + 3)
            .map(|i| {
                let writer = writer.clone();
                tokio::spawn(async move { writer.submit(i).await })
            })
            .collect();
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert_eq!(
            writer.queue.capacity(),
            0,
            "the queue is full; later callers wait"
        );
        gate.add_permits(calls.len());
        for (i, call) in calls.into_iter().enumerate() {
            assert_eq!(call.await.unwrap().unwrap(), i as i32);
        }
    }

    /// A group that fails for one bad item, against a real server.
    #[cfg(feature = "testing")]
    mod isolating_failures {
        use std::sync::atomic::{AtomicUsize, Ordering};

        use diesel::prelude::*;
        use diesel::sql_types::{Array, Int4};

        use super::super::*;
        use crate::testing::TestDatabase;

        #[derive(QueryableByName)]
        struct Quotient {
            #[diesel(sql_type = Int4)]
            q: i32,
        }

        /// Statements `divide_hundred` has run.
        static STATEMENTS: AtomicUsize = AtomicUsize::new(0);

        /// 100 divided by each item, in order: a zero fails the whole statement.
        fn divide_hundred(conn: &mut PgConnection, items: &[i32]) -> QueryResult<Vec<i32>> {
            STATEMENTS.fetch_add(1, Ordering::SeqCst);
            let rows: Vec<Quotient> = diesel::sql_query(
                "SELECT 100 / x AS q FROM unnest($1::int4[]) WITH ORDINALITY AS t(x, n) ORDER BY n",
            )
            .bind::<Array<Int4>, _>(items)
            .load(conn)?;
            Ok(rows.into_iter().map(|r| r.q).collect())
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn one_bad_item_fails_alone_and_the_rest_pay_a_few_statements() {
            let db = TestDatabase::new("group");
            let pool = db.pool(2);

            let together = write_isolating_failures(&pool, vec![1, 2, 4], divide_hundred, |_| 0).await;
            let together: Vec<i32> = together.into_iter().map(Result::unwrap).collect();
            assert_eq!(together, [100, 50, 25]);

            let answers = write_isolating_failures(&pool, vec![5, 0, 10], divide_hundred, |_| 0).await;
            assert_eq!(answers.len(), 3);
            assert_eq!(answers[0].as_ref().unwrap(), &20);
            assert!(answers[1].is_err(), "the zero fails");
            assert_eq!(answers[2].as_ref().unwrap(), &10);

            // One bad item in a group of 64: the group, then two halves per halving down to it.
            let mut group: Vec<i32> = (1..=64).collect();
            group[37] = 0;
            STATEMENTS.store(0, Ordering::SeqCst);
            let answers = write_isolating_failures(&pool, group.clone(), divide_hundred, |_| 0).await;
            assert_eq!(
                STATEMENTS.load(Ordering::SeqCst),
                1 + 2 * 6,
                "not one statement per item"
            );
            for (item, answer) in group.iter().zip(&answers) {
                match item {
                    0 => assert!(answer.is_err()),
                    n => assert_eq!(answer.as_ref().unwrap(), &(100 / n)),
                }
            }
        }
    }
}
