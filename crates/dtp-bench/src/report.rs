//! What a run measured: one `Measurement` per figure, printed as a JSON line when taken and
//! as one aligned table at the end. Targets are either checks (correctness; a miss fails
//! the run) or goals (performance; a miss is reported, not fatal).

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::json;

/// A bound a figure should respect.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    AtLeast(f64),
    AtMost(f64),
}

impl Target {
    fn met_by(self, value: f64) -> bool {
        match self {
            Target::AtLeast(bound) => value >= bound,
            Target::AtMost(bound) => value <= bound,
        }
    }

    fn describe(self) -> String {
        match self {
            Target::AtLeast(bound) => format!(">= {}", number(bound)),
            Target::AtMost(bound) => format!("<= {}", number(bound)),
        }
    }
}

/// Whether missing a target is a failed run or a slow one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stakes {
    /// Correctness: every task once, no errors. A miss makes the run fail.
    Check,
    /// Performance: a miss is reported and the run still succeeds.
    Goal,
}

#[derive(Debug, Clone)]
pub struct Measurement {
    pub scenario: &'static str,
    /// The settings the figure was taken with, e.g. `c=256`.
    pub config: String,
    pub metric: &'static str,
    pub value: f64,
    pub unit: &'static str,
    pub target: Option<(Target, Stakes)>,
}

impl Measurement {
    pub fn new(scenario: &'static str, config: impl Into<String>, metric: &'static str, value: f64) -> Self {
        Self {
            scenario,
            config: config.into(),
            metric,
            value,
            unit: "",
            target: None,
        }
    }

    pub fn unit(mut self, unit: &'static str) -> Self {
        self.unit = unit;
        self
    }

    pub fn goal(mut self, target: Target) -> Self {
        self.target = Some((target, Stakes::Goal));
        self
    }

    pub fn check(mut self, target: Target) -> Self {
        self.target = Some((target, Stakes::Check));
        self
    }

    pub fn met(&self) -> Option<bool> {
        self.target.map(|(target, _)| target.met_by(self.value))
    }

    fn failed_check(&self) -> bool {
        matches!(self.target, Some((_, Stakes::Check))) && self.met() == Some(false)
    }

    /// One JSON object on one line.
    pub fn json_line(&self, smoke: bool) -> String {
        json!({
            "scenario": self.scenario,
            "config": self.config,
            "metric": self.metric,
            "value": self.value,
            "unit": self.unit,
            "target": self.target.map(|(t, _)| t.describe()),
            "stakes": self.target.map(|(_, s)| if s == Stakes::Check { "check" } else { "goal" }),
            "met": self.met(),
            "smoke": smoke,
        })
        .to_string()
    }
}

/// Every measurement of a run, in the order taken.
pub struct Report {
    smoke: bool,
    measurements: Vec<Measurement>,
}

impl Report {
    pub fn new(smoke: bool) -> Self {
        Self {
            smoke,
            measurements: Vec::new(),
        }
    }

    /// Records a measurement and prints its JSON line at once, so a long run shows progress.
    pub fn record(&mut self, measurement: Measurement) {
        println!("{}", measurement.json_line(self.smoke));
        self.measurements.push(measurement);
    }

    /// The value of an earlier measurement, for scenarios that compare with one.
    pub fn value_of(&self, scenario: &str, config: &str, metric: &str) -> Option<f64> {
        self.measurements
            .iter()
            .rev()
            .find(|m| m.scenario == scenario && m.config == config && m.metric == metric)
            .map(|m| m.value)
    }

    pub fn failed_checks(&self) -> Vec<&Measurement> {
        self.measurements.iter().filter(|m| m.failed_check()).collect()
    }

    /// The aligned table of every measurement.
    pub fn table(&self) -> String {
        let header = ["scenario", "config", "metric", "value", "unit", "target", "met"];
        let rows: Vec<[String; 7]> = self
            .measurements
            .iter()
            .map(|m| {
                [
                    m.scenario.to_owned(),
                    m.config.clone(),
                    m.metric.to_owned(),
                    number(m.value),
                    m.unit.to_owned(),
                    m.target.map(|(t, _)| t.describe()).unwrap_or_else(|| "-".into()),
                    match m.met() {
                        Some(true) => "yes".into(),
                        Some(false) => "NO".into(),
                        None => "-".into(),
                    },
                ]
            })
            .collect();
        let mut widths = header.map(str::len);
        for row in &rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let mut line = |cells: &[String]| {
            let mut text = String::new();
            for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
                // Numbers read best right-aligned.
                if i == 3 {
                    let _ = write!(text, "{cell:>width$}  ");
                } else {
                    let _ = write!(text, "{cell:<width$}  ");
                }
            }
            out.push_str(text.trim_end());
            out.push('\n');
        };
        line(&header.map(str::to_owned));
        line(&widths.map(|w| "-".repeat(w)));
        for row in &rows {
            line(row);
        }
        out
    }
}

/// A figure with as many decimals as it deserves.
fn number(value: f64) -> String {
    if value.fract() == 0.0 || value.abs() >= 100.0 {
        format!("{value:.0}")
    } else if value.abs() >= 1.0 {
        format!("{value:.2}")
    } else {
        format!("{value:.3}")
    }
}

/// Latency percentiles of a sample, in milliseconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Latencies {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Latencies {
    pub fn of_millis(mut samples: Vec<f64>) -> Self {
        samples.sort_by(f64::total_cmp);
        Self {
            p50_ms: nearest_rank(&samples, 0.50),
            p99_ms: nearest_rank(&samples, 0.99),
            max_ms: samples.last().copied().unwrap_or(0.0),
        }
    }

    pub fn of(samples: &[Duration]) -> Self {
        Self::of_millis(samples.iter().map(|d| d.as_secs_f64() * 1_000.0).collect())
    }
}

/// The nearest-rank percentile of sorted samples (0 for none).
fn nearest_rank(sorted: &[f64], quantile: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (quantile * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let l = Latencies::of_millis((1..=100).map(f64::from).collect());
        assert_eq!((l.p50_ms, l.p99_ms, l.max_ms), (50.0, 99.0, 100.0));
        let one = Latencies::of_millis(vec![7.0]);
        assert_eq!((one.p50_ms, one.p99_ms), (7.0, 7.0));
        assert_eq!(Latencies::of_millis(vec![]).p99_ms, 0.0);
    }

    #[test]
    fn checks_fail_the_run_and_goals_do_not() {
        let mut report = Report::new(false);
        report.record(Measurement::new("drain", "c=1", "violations", 1.0).check(Target::AtMost(0.0)));
        report.record(Measurement::new("enqueue", "", "tasks_per_s", 10.0).goal(Target::AtLeast(60_000.0)));
        assert_eq!(report.failed_checks().len(), 1);
        let table = report.table();
        assert!(table.contains(">= 60000"), "{table}");
        assert_eq!(table.lines().count(), 4);
    }
}
