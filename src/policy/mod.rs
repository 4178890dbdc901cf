//! Retention: which snapshots `vault forget` keeps, and why. A pure function
//! of the snapshots, the rules, the current time and a time zone; no I/O.
//!
//! Snapshots are grouped (by host and source unless told otherwise) and
//! each group is judged on its own. Every rule picks snapshots to keep,
//! independently of the others; a snapshot is kept if any rule picks it,
//! and removed otherwise. So adding a rule never removes a snapshot, and
//! the newest snapshot of every group is always kept.

mod duration;
mod period;

pub use duration::KeepDuration;
pub use period::{period_of, Period, PeriodKey};

use std::collections::BTreeMap;
use std::fmt;

use jiff::tz::TimeZone;

use crate::error::{Error, Result};
use crate::format::snapshot::Snapshot;
use crate::format::{Id, Timestamp};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeepRules {
    /// The newest N snapshots.
    pub last: Option<u32>,
    /// The newest snapshot of each of the newest N periods that have one,
    /// indexed like `Period::ALL`.
    pub periods: [Option<u32>; 5],
    /// Every snapshot taken within this long before now.
    pub within: Option<KeepDuration>,
    /// The newest snapshot of every period within this long before now,
    /// indexed like `Period::ALL`.
    pub within_periods: [Option<KeepDuration>; 5],
    /// Every snapshot carrying one of these tags.
    pub tags: Vec<String>,
}

impl KeepRules {
    pub fn is_empty(&self) -> bool {
        self.last.is_none()
            && self.periods.iter().all(Option::is_none)
            && self.within.is_none()
            && self.within_periods.iter().all(Option::is_none)
            && self.tags.is_empty()
    }
}

/// Why a snapshot is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// Among the newest N (1-based position).
    Last(u32),
    /// Newest of this period, one of the N newest periods.
    Period(PeriodKey),
    Within(KeepDuration),
    /// Newest of this period, within the duration.
    WithinPeriod(PeriodKey, KeepDuration),
    Tag(String),
    /// No rule picked it, but a group always keeps its newest snapshot.
    NewestOfGroup,
    /// Snapshots were named for removal, and not this one.
    NotNamed,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Last(n) => write!(f, "last {n}"),
            Reason::Period(p) => write!(f, "{} {p}", period_name(p)),
            Reason::Within(d) => write!(f, "within {d}"),
            Reason::WithinPeriod(p, d) => write!(f, "{} {p} within {d}", period_name(p)),
            Reason::Tag(t) => write!(f, "tag {t}"),
            Reason::NewestOfGroup => f.write_str("newest of its group"),
            Reason::NotNamed => f.write_str("not named"),
        }
    }
}

fn period_name(key: &PeriodKey) -> &'static str {
    key.period().name()
}

/// Which snapshot fields make up a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupBy {
    pub host: bool,
    /// The source kind and its paths or stream name.
    pub source: bool,
    pub tags: bool,
}

impl Default for GroupBy {
    fn default() -> Self {
        GroupBy {
            host: true,
            source: true,
            tags: false,
        }
    }
}

impl std::str::FromStr for GroupBy {
    type Err = Error;

    /// A comma-separated list of `host`, `source`, `tags`; empty for one
    /// group of everything.
    fn from_str(s: &str) -> Result<Self> {
        let mut g = GroupBy {
            host: false,
            source: false,
            tags: false,
        };
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "host" => g.host = true,
                "source" | "paths" => g.source = true,
                "tags" => g.tags = true,
                other => {
                    return Err(Error::invalid(format!(
                        "cannot group by '{other}' (use host, source, tags)"
                    )))
                }
            }
        }
        Ok(g)
    }
}

/// What a group shares; a field not grouped by is `None`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct GroupKey {
    pub host: Option<String>,
    pub source: Option<(String, Vec<Vec<u8>>)>,
    pub tags: Option<Vec<String>>,
}

impl GroupKey {
    fn of(s: &Snapshot, by: GroupBy) -> Self {
        GroupKey {
            host: by.host.then(|| s.host.clone()),
            source: by.source.then(|| {
                let mut paths = s.paths.clone();
                paths.sort();
                (s.source.clone(), paths)
            }),
            tags: by.tags.then(|| {
                let mut tags = s.tags.clone();
                tags.sort();
                tags.dedup();
                tags
            }),
        }
    }
}

impl fmt::Display for GroupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(h) = &self.host {
            parts.push(format!("host {h}"));
        }
        if let Some((kind, paths)) = &self.source {
            let paths: Vec<_> = paths
                .iter()
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .collect();
            parts.push(format!("{kind} {}", paths.join(" ")));
        }
        if let Some(t) = &self.tags {
            parts.push(format!("tags [{}]", t.join(",")));
        }
        if parts.is_empty() {
            parts.push("all snapshots".into());
        }
        f.write_str(&parts.join(", "))
    }
}

/// Which snapshots a forget run considers at all; others are left alone.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub hosts: Vec<String>,
    /// All of these tags.
    pub tags: Vec<String>,
    /// A source kind (`files`, `stdin`, ...), a path, or a stream name.
    pub sources: Vec<String>,
}

impl Selection {
    /// Whether it selects every snapshot.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty() && self.tags.is_empty() && self.sources.is_empty()
    }

    pub fn matches(&self, s: &Snapshot) -> bool {
        (self.hosts.is_empty() || self.hosts.contains(&s.host))
            && self.tags.iter().all(|t| s.tags.contains(t))
            && (self.sources.is_empty()
                || self
                    .sources
                    .iter()
                    .any(|src| *src == s.source || s.paths.iter().any(|p| p == src.as_bytes())))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    pub id: Id,
    pub time: Timestamp,
    pub reasons: Vec<Reason>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    pub id: Id,
    pub time: Timestamp,
}

/// One group's verdict, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupPlan {
    pub key: GroupKey,
    pub keep: Vec<Kept>,
    pub remove: Vec<Removed>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// Sorted by group key.
    pub groups: Vec<GroupPlan>,
}

impl Plan {
    pub fn removed(&self) -> impl Iterator<Item = &Removed> {
        self.groups.iter().flat_map(|g| &g.remove)
    }

    pub fn kept(&self) -> impl Iterator<Item = &Kept> {
        self.groups.iter().flat_map(|g| &g.keep)
    }
}

/// Apply `rules` to the selected `snapshots` as of `now`, with periods in
/// `tz`. The result does not depend on the order of `snapshots`. An empty
/// rule set is refused: it would remove everything but the newest.
pub fn apply(
    snapshots: &[(Id, Snapshot)],
    rules: &KeepRules,
    selection: &Selection,
    group_by: GroupBy,
    now: Timestamp,
    tz: &TimeZone,
) -> Result<Plan> {
    if rules.is_empty() {
        return Err(Error::invalid(
            "no keep rule given (such as --keep-last, --keep-daily or --keep-within): refusing to remove every snapshot but the newest",
        ));
    }
    let mut plan = Plan::default();
    for (key, members) in groups(snapshots, selection, group_by) {
        plan.groups.push(judge(key, &members, rules, now, tz)?);
    }
    Ok(plan)
}

/// The selected snapshots by group, each newest first; the id breaks ties
/// so listing order never matters.
fn groups<'s>(
    snapshots: &'s [(Id, Snapshot)],
    selection: &Selection,
    group_by: GroupBy,
) -> BTreeMap<GroupKey, Vec<(&'s Id, &'s Snapshot)>> {
    let mut groups: BTreeMap<GroupKey, Vec<(&Id, &Snapshot)>> = BTreeMap::new();
    for (id, s) in snapshots.iter().filter(|(_, s)| selection.matches(s)) {
        groups
            .entry(GroupKey::of(s, group_by))
            .or_default()
            .push((id, s));
    }
    for members in groups.values_mut() {
        members.sort_by(|a, b| (b.1.time, b.0).cmp(&(a.1.time, a.0)));
        members.dedup_by(|a, b| a.0 == b.0);
    }
    groups
}

/// Remove exactly the snapshots `named`, shown among the others of their
/// groups (kept as not named).
pub fn remove_named(snapshots: &[(Id, Snapshot)], named: &[Id], group_by: GroupBy) -> Plan {
    let mut plan = Plan::default();
    for (key, members) in groups(snapshots, &Selection::default(), group_by) {
        let (remove, keep): (Vec<_>, Vec<_>) =
            members.into_iter().partition(|(id, _)| named.contains(id));
        if remove.is_empty() {
            continue;
        }
        plan.groups.push(GroupPlan {
            key,
            keep: keep
                .into_iter()
                .map(|(id, s)| Kept {
                    id: *id,
                    time: s.time,
                    reasons: vec![Reason::NotNamed],
                })
                .collect(),
            remove: remove
                .into_iter()
                .map(|(id, s)| Removed {
                    id: *id,
                    time: s.time,
                })
                .collect(),
        });
    }
    plan
}

fn judge(
    key: GroupKey,
    members: &[(&Id, &Snapshot)],
    rules: &KeepRules,
    now: Timestamp,
    tz: &TimeZone,
) -> Result<GroupPlan> {
    let mut reasons: Vec<Vec<Reason>> = vec![Vec::new(); members.len()];
    if let Some(n) = rules.last {
        for (i, r) in reasons.iter_mut().enumerate().take(n as usize) {
            r.push(Reason::Last(i as u32 + 1));
        }
    }
    for (period, count) in Period::ALL.iter().zip(rules.periods) {
        let Some(count) = count else { continue };
        for (i, key) in newest_per_period(members, *period, tz, |_| true)
            .into_iter()
            .take(count as usize)
        {
            reasons[i].push(Reason::Period(key));
        }
    }
    if let Some(d) = rules.within {
        let cutoff = cutoff(now, d, tz)?;
        for (i, (_, s)) in members.iter().enumerate() {
            if s.time >= cutoff {
                reasons[i].push(Reason::Within(d));
            }
        }
    }
    for (period, within) in Period::ALL.iter().zip(rules.within_periods) {
        let Some(d) = within else { continue };
        let cutoff = cutoff(now, d, tz)?;
        for (i, key) in newest_per_period(members, *period, tz, |s| s.time >= cutoff) {
            reasons[i].push(Reason::WithinPeriod(key, d));
        }
    }
    for (i, (_, s)) in members.iter().enumerate() {
        for tag in rules.tags.iter().filter(|t| s.tags.contains(t)) {
            reasons[i].push(Reason::Tag(tag.clone()));
        }
    }
    if let Some(newest) = reasons.first_mut() {
        if newest.is_empty() {
            newest.push(Reason::NewestOfGroup);
        }
    }
    let mut plan = GroupPlan {
        key,
        keep: Vec::new(),
        remove: Vec::new(),
    };
    for ((id, s), reasons) in members.iter().zip(reasons) {
        if reasons.is_empty() {
            plan.remove.push(Removed {
                id: **id,
                time: s.time,
            });
        } else {
            plan.keep.push(Kept {
                id: **id,
                time: s.time,
                reasons,
            });
        }
    }
    Ok(plan)
}

/// Positions (in newest-first `members`) of the newest snapshot of each
/// period, newest period first, among snapshots that pass `consider`.
fn newest_per_period(
    members: &[(&Id, &Snapshot)],
    period: Period,
    tz: &TimeZone,
    consider: impl Fn(&Snapshot) -> bool,
) -> Vec<(usize, PeriodKey)> {
    let mut out: Vec<(usize, PeriodKey)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, (_, s)) in members.iter().enumerate() {
        if !consider(s) {
            continue;
        }
        let key = period_of(period, s.time, tz);
        if seen.insert(key.clone()) {
            out.push((i, key));
        }
    }
    out
}

/// The earliest moment `within` of `now`, counted back on the calendar of
/// `tz` (so `1d` across a DST change is one calendar day).
fn cutoff(now: Timestamp, within: KeepDuration, tz: &TimeZone) -> Result<Timestamp> {
    let span = within.to_span()?;
    let zoned = period::to_jiff(now).to_zoned(tz.clone());
    let back = zoned.checked_sub(span).map_err(|e| {
        Error::invalid(format!(
            "--keep-within {within} reaches before the calendar: {e}"
        ))
    })?;
    Ok(Timestamp {
        secs: back.timestamp().as_second(),
        nanos: now.nanos,
    })
}
