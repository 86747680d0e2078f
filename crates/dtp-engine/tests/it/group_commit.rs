//! Group writes: a group that fails for one bad item is written again in halves, so that
//! only that item fails, everything else gets its own answer, and the rest of the group
//! pays a few statements, not one each.

use std::sync::atomic::{AtomicUsize, Ordering};

use diesel::prelude::*;
use diesel::sql_types::{Array, Int4};
use dtp_engine::testing::TestEngine;
use service_runtime::database::{build_pool, DatabaseUrl};
use service_runtime::group_commit::write_together_isolating_failures;

use crate::stepped;

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
async fn one_bad_item_fails_alone() {
    let dtp = TestEngine::spawn_with(stepped).await;
    let pool = build_pool(&DatabaseUrl::parse(&dtp.database().url()).unwrap(), 2).unwrap();

    let together = write_together_isolating_failures(&pool, vec![1, 2, 4], divide_hundred).await;
    let together: Vec<i32> = together.into_iter().map(Result::unwrap).collect();
    assert_eq!(together, [100, 50, 25]);

    let answers = write_together_isolating_failures(&pool, vec![5, 0, 10], divide_hundred).await;
    assert_eq!(answers.len(), 3);
    assert_eq!(answers[0].as_ref().unwrap(), &20);
    assert!(answers[1].is_err(), "the zero fails");
    assert_eq!(answers[2].as_ref().unwrap(), &10);

    // One bad item in a group of 64: the group, then two halves per halving down to it.
    let mut group: Vec<i32> = (1..=64).collect();
    group[37] = 0;
    STATEMENTS.store(0, Ordering::SeqCst);
    let answers = write_together_isolating_failures(&pool, group.clone(), divide_hundred).await;
    let statements = STATEMENTS.load(Ordering::SeqCst);
    assert_eq!(statements, 1 + 2 * 6, "not one statement per item");
    for (item, answer) in group.iter().zip(&answers) {
        match item {
            0 => assert!(answer.is_err()),
            n => assert_eq!(answer.as_ref().unwrap(), &(100 / n)),
        }
    }
}
