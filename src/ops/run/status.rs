//! The plan's state as of now: per source the last success and failure,
//! RPO age, newest drill against the RTO, size trend and success rates.
//! Pure: it reads records already loaded, so status, metrics, alerts and
//! the status page all judge the same facts the same way.

use std::collections::HashMap;

use serde::Serialize;

use super::plan::CHECK_TASK;
use super::source_tag;
use crate::config::{Plan, Source};
use crate::format::drill::Drill;
use crate::format::run::RunRecord;
use crate::format::snapshot::Snapshot;
use crate::format::{Id, Timestamp};

const DAY: u64 = 86_400;
/// Successful runs the size trend averages over.
pub const SIZE_WINDOW: usize = 5;

/// Space used by the repository, and free on its disk when it is local.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Space {
    pub location: String,
    pub size_bytes: u64,
    pub free_bytes: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub time: String,
    pub time_seconds: i64,
    pub healthy: bool,
    pub breaches: Vec<String>,
    pub repository: Space,
    pub sources: Vec<SourceStatus>,
    pub check: Option<CheckStatus>,
    /// Run records that could not be read.
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunView {
    pub time: String,
    pub time_seconds: i64,
    pub duration_ms: u64,
    pub message: String,
    pub snapshot: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Rpo {
    pub target_seconds: u64,
    /// Age of the newest snapshot; none when there is none.
    pub age_seconds: Option<u64>,
    pub breached: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct DrillView {
    pub time: String,
    pub time_seconds: i64,
    pub snapshot: String,
    pub passed: bool,
    pub restore_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Rto {
    pub target_seconds: Option<u64>,
    pub drill: Option<DrillView>,
    pub breached: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct SizeTrend {
    pub latest_bytes: Option<u64>,
    /// Average of up to SIZE_WINDOW successful runs before the latest.
    pub average_bytes: Option<u64>,
    pub percent: Option<u64>,
    pub anomaly: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Rates {
    pub runs_7d: u64,
    pub passed_7d: u64,
    pub rate_7d: Option<f64>,
    pub runs_30d: u64,
    pub passed_30d: u64,
    pub rate_30d: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CopyView {
    pub target: String,
    pub passed: Option<bool>,
    pub time: Option<String>,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Point {
    pub time_seconds: i64,
    pub bytes: u64,
    pub passed: bool,
    /// Age of the newest snapshot when this run started.
    pub rpo_age_seconds: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SourceStatus {
    pub name: String,
    pub kind: String,
    pub healthy: bool,
    pub breaches: Vec<String>,
    pub last_success: Option<RunView>,
    pub last_failure: Option<RunView>,
    /// Whether the newest run failed.
    pub failing: bool,
    /// The step the newest run failed at.
    pub failed_step: Option<String>,
    pub rpo: Rpo,
    pub rto: Rto,
    pub size: SizeTrend,
    pub success: Rates,
    pub copies: Vec<CopyView>,
    /// Runs of the last 30 days, oldest first: the page's chart.
    pub history: Vec<Point>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckStatus {
    pub last_success: Option<RunView>,
    pub last_failure: Option<RunView>,
    pub failing: bool,
}

pub struct Inputs<'a> {
    pub plan: &'a Plan,
    /// Every run record, in any order.
    pub records: &'a [RunRecord],
    pub snapshots: &'a [(Id, Snapshot)],
    pub drills: &'a [(Id, Drill)],
    pub space: Space,
    pub now: Timestamp,
    pub warnings: Vec<String>,
}

pub fn rfc3339(t: Timestamp) -> String {
    let (y, mo, d, h, mi, s) = t.utc();
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

fn age(since: Timestamp, now: Timestamp) -> u64 {
    u64::try_from(now.secs.saturating_sub(since.secs)).unwrap_or(0)
}

fn view(r: &RunRecord) -> RunView {
    RunView {
        time: rfc3339(r.time),
        time_seconds: r.time.secs,
        duration_ms: r.duration_ms,
        message: r.message.clone(),
        snapshot: r.snapshot.map(|id| id.to_hex()),
    }
}

pub fn status(input: Inputs<'_>) -> Status {
    let mut by_task: HashMap<&str, Vec<&RunRecord>> = HashMap::new();
    for r in input.records {
        by_task.entry(r.task.as_str()).or_default().push(r);
    }
    for list in by_task.values_mut() {
        list.sort_by_key(|r| r.time);
    }
    let snapshot_source: HashMap<Id, &str> = input
        .snapshots
        .iter()
        .filter_map(|(id, s)| {
            input
                .plan
                .sources
                .iter()
                .find(|src| s.tags.contains(&source_tag(&src.name)))
                .map(|src| (*id, src.name.as_str()))
        })
        .chain(
            input
                .records
                .iter()
                .filter_map(|r| Some((r.snapshot?, r.task.as_str()))),
        )
        .collect();
    let sources: Vec<SourceStatus> = input
        .plan
        .sources
        .iter()
        .map(|src| {
            let runs = by_task.get(src.name.as_str()).cloned().unwrap_or_default();
            source_status(src, input.plan, &runs, &input, &snapshot_source)
        })
        .collect();
    let check = input.plan.check.as_ref().map(|_| {
        let runs = by_task.get(CHECK_TASK).cloned().unwrap_or_default();
        CheckStatus {
            last_success: runs.iter().rev().find(|r| r.passed).map(|r| view(r)),
            last_failure: runs.iter().rev().find(|r| !r.passed).map(|r| view(r)),
            failing: runs.last().is_some_and(|r| !r.passed),
        }
    });
    let mut breaches: Vec<String> = sources
        .iter()
        .flat_map(|s| s.breaches.iter().map(move |b| format!("{}: {b}", s.name)))
        .collect();
    if check.as_ref().is_some_and(|c| c.failing) {
        breaches.push(format!("{CHECK_TASK}: the repository check failed"));
    }
    Status {
        time: rfc3339(input.now),
        time_seconds: input.now.secs,
        healthy: breaches.is_empty(),
        breaches,
        repository: input.space.clone(),
        sources,
        check,
        warnings: input.warnings.clone(),
    }
}

fn source_status(
    src: &Source,
    plan: &Plan,
    runs: &[&RunRecord],
    input: &Inputs<'_>,
    snapshot_source: &HashMap<Id, &str>,
) -> SourceStatus {
    let now = input.now;
    let tag = source_tag(&src.name);
    let newest_snapshot = input
        .snapshots
        .iter()
        .filter(|(_, s)| s.tags.contains(&tag))
        .map(|(_, s)| s.time)
        .max();
    let rpo_age = newest_snapshot.map(|t| age(t, now));
    let rpo = Rpo {
        target_seconds: src.rpo.secs,
        age_seconds: rpo_age,
        breached: rpo_age.is_none_or(|a| a > src.rpo.secs),
    };

    let drill = input
        .drills
        .iter()
        .filter(|(_, d)| snapshot_source.get(&d.snapshot) == Some(&src.name.as_str()))
        .max_by_key(|(_, d)| d.time)
        .map(|(_, d)| DrillView {
            time: rfc3339(d.time),
            time_seconds: d.time.secs,
            snapshot: d.snapshot.to_hex(),
            passed: d.passed,
            restore_ms: d.restore_ms,
        });
    let rto_target = src.rto.map(|i| i.secs);
    let rto = Rto {
        target_seconds: rto_target,
        breached: drill.as_ref().is_some_and(|d| {
            !d.passed || rto_target.is_some_and(|t| d.restore_ms > t.saturating_mul(1000))
        }),
        drill,
    };

    let backups: Vec<&RunRecord> = runs
        .iter()
        .copied()
        .filter(|r| r.steps.iter().any(|s| s.name == "snapshot"))
        .collect();
    let sizes: Vec<u64> = backups
        .iter()
        .filter(|r| r.passed && r.snapshot.is_some())
        .map(|r| r.bytes)
        .collect();
    let size = size_trend(&sizes, plan);

    let window = |days: u64| {
        let recent: Vec<_> = runs
            .iter()
            .filter(|r| age(r.time, now) <= days * DAY)
            .collect();
        let passed = recent.iter().filter(|r| r.passed).count() as u64;
        let total = recent.len() as u64;
        (
            total,
            passed,
            (total > 0).then(|| passed as f64 / total as f64),
        )
    };
    let (runs_7d, passed_7d, rate_7d) = window(7);
    let (runs_30d, passed_30d, rate_30d) = window(30);

    let copies = plan
        .copies_of(src)
        .map(|c| {
            let step_name = format!("copy {}", c.name);
            let found = runs.iter().rev().find_map(|r| {
                r.steps
                    .iter()
                    .find(|s| s.name == step_name)
                    .map(|s| (r.time, s))
            });
            CopyView {
                target: c.name.clone(),
                passed: found.map(|(_, s)| s.passed),
                time: found.map(|(t, _)| rfc3339(t)),
                detail: found.map(|(_, s)| s.detail.clone()).unwrap_or_default(),
            }
        })
        .collect();

    let mut history = Vec::new();
    let mut last_good: Option<Timestamp> = None;
    for r in backups.iter().filter(|r| age(r.time, now) <= 30 * DAY) {
        history.push(Point {
            time_seconds: r.time.secs,
            bytes: r.bytes,
            passed: r.passed,
            rpo_age_seconds: last_good.map(|t| age(t, r.time)),
        });
        if r.passed && r.snapshot.is_some() {
            last_good = Some(r.time);
        }
    }

    let failing = runs.last().is_some_and(|r| !r.passed);
    let mut breaches = Vec::new();
    if failing {
        let message = runs.last().map(|r| r.message.as_str()).unwrap_or_default();
        breaches.push(format!("the last run failed: {message}"));
    }
    if rpo.breached {
        breaches.push(match rpo_age {
            Some(a) => format!(
                "RPO breached: newest snapshot is {a}s old, target {}s",
                rpo.target_seconds
            ),
            None => "RPO breached: no snapshot yet".to_string(),
        });
    }
    if rto.breached {
        breaches.push("RTO breached: the newest drill failed or restored too slowly".to_string());
    }
    SourceStatus {
        name: src.name.clone(),
        kind: src.kind.name().to_string(),
        healthy: breaches.is_empty(),
        breaches,
        last_success: runs.iter().rev().find(|r| r.passed).map(|r| view(r)),
        last_failure: runs.iter().rev().find(|r| !r.passed).map(|r| view(r)),
        failing,
        failed_step: runs
            .last()
            .filter(|r| !r.passed)
            .and_then(|r| r.steps.iter().find(|s| !s.passed))
            .map(|s| s.name.clone()),
        rpo,
        rto,
        size,
        success: Rates {
            runs_7d,
            passed_7d,
            rate_7d,
            runs_30d,
            passed_30d,
            rate_30d,
        },
        copies,
        history,
    }
}

/// The latest size against the average of the runs before it: outside
/// the plan's band (50-200% by default) it is an anomaly.
pub fn size_trend(sizes: &[u64], plan: &Plan) -> SizeTrend {
    let Some((&latest, before)) = sizes.split_last() else {
        return SizeTrend {
            latest_bytes: None,
            average_bytes: None,
            percent: None,
            anomaly: false,
        };
    };
    let window = &before[before.len().saturating_sub(SIZE_WINDOW)..];
    if window.is_empty() {
        return SizeTrend {
            latest_bytes: Some(latest),
            average_bytes: None,
            percent: None,
            anomaly: false,
        };
    }
    let average = window.iter().map(|&b| u128::from(b)).sum::<u128>() / window.len() as u128;
    let percent = match (u128::from(latest) * 100).checked_div(average) {
        Some(p) => u64::try_from(p).unwrap_or(u64::MAX),
        None if latest == 0 => 100,
        None => u64::MAX,
    };
    SizeTrend {
        latest_bytes: Some(latest),
        average_bytes: Some(u64::try_from(average).unwrap_or(u64::MAX)),
        percent: Some(percent),
        anomaly: percent < u64::from(plan.alerts.size_low_percent)
            || percent > u64::from(plan.alerts.size_high_percent),
    }
}

/// `90s`, `12m`, `3.5h`, `2.0d`: an age or target as the status shows it.
pub fn human_duration(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 2 * 3600 => format!("{}m", s / 60),
        s if s < 2 * 86_400 => format!("{:.1}h", s as f64 / 3600.0),
        s => format!("{:.1}d", s as f64 / 86_400.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_trend_flags_only_what_leaves_the_band() {
        let plan = Plan::parse("[repository]\nlocation = \"/r\"\n").unwrap();
        let cases: [(&[u64], Option<u64>, bool); 7] = [
            (&[], None, false),
            (&[100], None, false),
            (&[100, 100], Some(100), false),
            (&[100, 100, 50], Some(50), false),
            (&[100, 100, 49], Some(49), true),
            (&[100, 100, 201], Some(201), true),
            // Only the last SIZE_WINDOW runs before the latest count.
            (&[1, 100, 100, 100, 100, 100, 60], Some(60), false),
        ];
        for (sizes, percent, anomaly) in cases {
            let t = size_trend(sizes, &plan);
            assert_eq!((t.percent, t.anomaly), (percent, anomaly), "{sizes:?}");
        }
    }
}
