//! The Overview page: the tenant's tasks by type and execution status, throughput and pickup
//! latency per minute over the last hour (drawn by uPlot from data in the page), and whether
//! DTP answers and the mirror is being followed.

use std::collections::{BTreeMap, BTreeSet};

use actix_web::{web, HttpResponse};
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use maud::html;
use serde_json::json;

use super::layout::{self, page, Section, Viewer};
use super::{html_page, PageError};
use crate::domain::api_key::Principal;
use crate::execution_follower::SCHEDULER_FEED;
use crate::http::AppState;
use crate::store::overview::{self as overview_store, MinuteFigures, StatusCount};
use crate::store::{self};

/// Minutes the charts cover.
const CHART_MINUTES: i64 = 60;

/// The charts' series: one point per minute of the last hour, minutes without figures
/// filled (no finished task: 0; no pickup: a gap).
#[derive(Debug, PartialEq)]
struct Series {
    minutes: Vec<i64>,
    finished: Vec<i64>,
    pickup_p50_ms: Vec<Option<f64>>,
    pickup_p95_ms: Vec<Option<f64>>,
}

fn first_minute(now: DateTime<Utc>) -> DateTime<Utc> {
    let this_minute = now.duration_trunc(TimeDelta::minutes(1)).unwrap_or(now);
    this_minute - TimeDelta::minutes(CHART_MINUTES - 1)
}

fn series(now: DateTime<Utc>, figures: &[MinuteFigures]) -> Series {
    let first = first_minute(now);
    let by_minute: BTreeMap<i64, &MinuteFigures> =
        figures.iter().map(|f| (f.minute.timestamp(), f)).collect();
    let minutes: Vec<i64> = (0..CHART_MINUTES)
        .map(|i| (first + TimeDelta::minutes(i)).timestamp())
        .collect();
    let at = |m: &i64| by_minute.get(m).copied();
    Series {
        finished: minutes.iter().map(|m| at(m).map_or(0, |f| f.finished)).collect(),
        pickup_p50_ms: minutes
            .iter()
            .map(|m| at(m).and_then(|f| f.pickup_p50_ms))
            .collect(),
        pickup_p95_ms: minutes
            .iter()
            .map(|m| at(m).and_then(|f| f.pickup_p95_ms))
            .collect(),
        minutes,
    }
}

/// Rows (types) by columns (statuses) of the counts, with the statuses seen.
fn count_table(counts: &[StatusCount]) -> (Vec<String>, BTreeMap<&str, BTreeMap<&str, i64>>) {
    let statuses: BTreeSet<&str> = counts.iter().map(|c| c.status.as_str()).collect();
    let mut rows: BTreeMap<&str, BTreeMap<&str, i64>> = BTreeMap::new();
    for c in counts {
        rows.entry(&c.task_type).or_default().insert(&c.status, c.count);
    }
    (statuses.into_iter().map(str::to_owned).collect(), rows)
}

/// `GET /ui/overview`.
pub(super) async fn overview_page(
    state: web::Data<AppState>,
    principal: Principal,
) -> Result<HttpResponse, PageError> {
    let viewer = Viewer::of(&principal);
    let now = Utc::now();
    let since = first_minute(now);
    let tenant = principal.tenant.clone();
    let (counts, minutes, following, moved_at) = store::run(&state.pool, move |conn| {
        Ok((
            overview_store::status_counts(conn, &tenant)?,
            overview_store::minutes_since(conn, &tenant, since)?,
            overview_store::someone_follows(conn)?,
            overview_store::feed_moved_at(conn, SCHEDULER_FEED)?,
        ))
    })
    .await?;
    let dtp_answers = state.scheduler.answers().await;
    let series = series(now, &minutes);
    let (statuses, rows) = count_table(&counts);
    let chart_data = json!({
        "minutes": series.minutes,
        "finished": series.finished,
        "pickupP50Ms": series.pickup_p50_ms,
        "pickupP95Ms": series.pickup_p95_ms,
    });
    let body = html! {
        h1 { "Overview" }
        section aria-labelledby="health-title" {
            h2 #health-title { "Health" }
            dl.facts {
                dt { "DTP" }
                dd #dtp-health { @if dtp_answers { (layout::status("OK")) " answers" } @else { (layout::status("DOWN")) " does not answer" } }
                dt { "Execution mirror" }
                dd #follower-health {
                    @if following { (layout::status("OK")) " followed by a TaskPilot process" }
                    @else { (layout::status("DOWN")) " no TaskPilot process follows DTP's change feed" }
                    "; last moved " (layout::time(moved_at))
                }
            }
        }
        section aria-labelledby="counts-title" {
            h2 #counts-title { "Tasks by type and execution status" }
            @if rows.is_empty() {
                p { "No tasks yet." }
            } @else {
                div.table-wrap {
                    table.counts {
                        thead { tr {
                            th scope="col" { "Type" }
                            @for s in &statuses { th scope="col" { (s) } }
                            th scope="col" { "All" }
                        } }
                        tbody {
                            @for (task_type, by_status) in &rows {
                                tr {
                                    th scope="row" { (task_type) }
                                    @for s in &statuses { td { (by_status.get(s.as_str()).copied().unwrap_or(0)) } }
                                    td { (by_status.values().sum::<i64>()) }
                                }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="charts-title" {
            h2 #charts-title { "The last hour" }
            (layout::script_data("chart-data", &chart_data))
            figure {
                figcaption #throughput-title { "Finished per minute" }
                div.chart #throughput-chart role="img" aria-labelledby="throughput-title"
                    aria-describedby="throughput-summary" {}
                p.summary #throughput-summary { (series.finished.iter().sum::<i64>()) " finished in the last hour." }
            }
            figure {
                figcaption #pickup-title { "Pickup latency of first attempts, p50 and p95 (ms)" }
                div.chart #pickup-chart role="img" aria-labelledby="pickup-title" {}
            }
        }
    };
    Ok(html_page(page(
        "Overview",
        Section::Overview,
        Some(&viewer),
        body,
    )))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 2, h, m, s).unwrap()
    }

    #[test]
    fn every_minute_of_the_hour_has_a_point_ending_with_the_current_one() {
        let s = series(at(10, 30, 42), &[]);
        assert_eq!(s.minutes.len(), 60);
        assert_eq!(s.minutes[0], at(9, 31, 0).timestamp());
        assert_eq!(*s.minutes.last().unwrap(), at(10, 30, 0).timestamp());
        assert!(s.finished.iter().all(|&n| n == 0));
        assert!(s.pickup_p50_ms.iter().all(Option::is_none));
    }

    #[test]
    fn figures_land_on_their_minute_and_the_rest_stay_empty() {
        let figures = [
            MinuteFigures {
                minute: at(10, 0, 0),
                finished: 7,
                pickup_p50_ms: Some(3.0),
                pickup_p95_ms: Some(9.5),
            },
            MinuteFigures {
                minute: at(10, 30, 0),
                finished: 0,
                pickup_p50_ms: Some(1.0),
                pickup_p95_ms: None,
            },
            // Older than the hour: not drawn.
            MinuteFigures {
                minute: at(9, 0, 0),
                finished: 99,
                pickup_p50_ms: None,
                pickup_p95_ms: None,
            },
        ];
        let s = series(at(10, 30, 5), &figures);
        let index = |t: DateTime<Utc>| s.minutes.iter().position(|&m| m == t.timestamp()).unwrap();
        assert_eq!(s.finished[index(at(10, 0, 0))], 7);
        assert_eq!(s.pickup_p95_ms[index(at(10, 0, 0))], Some(9.5));
        assert_eq!(s.pickup_p50_ms[index(at(10, 30, 0))], Some(1.0));
        assert_eq!(s.finished.iter().sum::<i64>(), 7);
        assert_eq!(s.pickup_p50_ms.iter().flatten().count(), 2);
    }

    #[test]
    fn counts_become_a_table_of_types_by_statuses() {
        let count = |t: &str, s: &str, n| StatusCount {
            task_type: t.into(),
            status: s.into(),
            count: n,
        };
        let counts = [
            count("a", "SUCCEEDED", 2),
            count("a", "UNBOUND", 1),
            count("b", "FAILED", 4),
        ];
        let (statuses, rows) = count_table(&counts);
        assert_eq!(statuses, ["FAILED", "SUCCEEDED", "UNBOUND"]);
        assert_eq!(rows["a"]["SUCCEEDED"], 2);
        assert_eq!(rows["b"].get("SUCCEEDED"), None);
        assert_eq!(rows["b"]["FAILED"], 4);
    }
}
