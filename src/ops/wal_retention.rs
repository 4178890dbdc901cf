//! WAL retention, planned: which files of the archive (`wal/`) prune may
//! delete. Pure: it judges names, push times and sizes already read, so
//! every decision is testable; `ops::prune::wal` does the reading and the
//! deleting. format-spec/README.md, "WAL archive", states the rules.
//!
//! A file is kept when any of these holds:
//! - it is a `.history` file (tiny, and recovery needs every one);
//! - a kept base backup may need it: it lies at or after the backup's
//!   start segment, on the backup's start timeline or a later one (a
//!   superset of what recovery reads, which is one timeline's history);
//! - it was pushed within the window (`--keep-wal-within`) or within the
//!   grace period, so a base backup being taken right now, whose snapshot
//!   does not exist yet, keeps the WAL it starts from;
//! - its header could not be read, so its push time is unknown.
//!
//! With no kept base backup and no window nothing is deleted: WAL is only
//! ever lost by a policy the user gave.

use std::collections::{BTreeMap, HashMap};

use crate::error::{Error, Result};
use crate::format::pg_base::{BaseBackup, PG_PHYSICAL_SOURCE};
use crate::format::snapshot::Snapshot;
use crate::format::wal::WalFile;
use crate::format::{Id, Timestamp};

/// A physical base backup snapshot that stays, with the WAL it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeptBase {
    pub id: Id,
    pub time: Timestamp,
    pub base: BaseBackup,
}

/// The base backups among `snapshots`. One whose `pg.base` does not read
/// is refused: the WAL it needs is unknown, so none may be deleted.
pub fn kept_bases(snapshots: &[(Id, Snapshot)]) -> Result<Vec<KeptBase>> {
    snapshots
        .iter()
        .filter_map(|(id, s)| kept_base(id, s).transpose())
        .collect()
}

/// The base backup `snapshot` is, if it is one.
pub fn kept_base(id: &Id, snapshot: &Snapshot) -> Result<Option<KeptBase>> {
    if snapshot.source != PG_PHYSICAL_SOURCE {
        return Ok(None);
    }
    let base = BaseBackup::from_meta(&snapshot.meta)
        .map_err(|e| e.at(format!("snapshot {}", id.short())))?
        .ok_or_else(|| {
            Error::corrupt(format!(
                "snapshot {}: a physical base backup without its pg.base record",
                id.short()
            ))
        })?;
    Ok(Some(KeptBase {
        id: *id,
        time: snapshot.time,
        base,
    }))
}

/// A file's place in the WAL: timeline and segment (log, seg). None for
/// `.history` files, which have no position.
pub fn position(file: &WalFile) -> Option<(u32, (u32, u32))> {
    match *file {
        WalFile::Segment { timeline, log, seg }
        | WalFile::Partial { timeline, log, seg }
        | WalFile::Backup {
            timeline, log, seg, ..
        } => Some((timeline, (log, seg))),
        WalFile::History { .. } => None,
    }
}

fn start_of(base: &BaseBackup) -> (u32, (u32, u32)) {
    match base.start_segment() {
        WalFile::Segment { timeline, log, seg } => (timeline, (log, seg)),
        // start_segment always names a segment.
        _ => (base.start_timeline, (u32::MAX, u32::MAX)),
    }
}

/// Whether a kept base backup may need `file` (see the module's rules).
pub fn needed_by_bases(file: &WalFile, bases: &[KeptBase]) -> bool {
    let Some((timeline, at)) = position(file) else {
        return true;
    };
    bases.iter().any(|b| {
        let (start_timeline, start) = start_of(&b.base);
        timeline >= start_timeline && at >= start
    })
}

/// The files whose push time decides their fate: all but those kept by
/// name alone. Prune reads only these headers.
pub fn undecided(files: &[WalFile], bases: &[KeptBase]) -> Vec<WalFile> {
    files
        .iter()
        .filter(|f| !needed_by_bases(f, bases))
        .copied()
        .collect()
}

/// What prune learnt of an undecided file from its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stat {
    /// When it was pushed, and the bytes its object takes in storage.
    Read { pushed: Timestamp, bytes: u64 },
    /// The header did not read (damage): kept, since its age is unknown.
    Unreadable,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalRules {
    /// `--keep-wal-within`, in seconds: keep everything pushed since.
    pub keep_within_secs: Option<u64>,
    /// Never delete what was pushed this recently (a base backup in
    /// progress may start from it).
    pub grace_secs: u64,
}

/// The files to delete on one timeline, for the plan's summary.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TimelineDeletion {
    pub timeline: u32,
    pub files: u64,
    pub first: String,
    pub last: String,
    pub bytes: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WalPlan {
    /// In the archive's order (timeline, then position), so a prune killed
    /// half-way leaves every timeline without a hole in what remains.
    pub delete: Vec<(WalFile, u64)>,
    pub kept: u64,
    /// Why nothing may be deleted at all, when that is so.
    pub held: Option<&'static str>,
    /// Files kept because their header did not read.
    pub unreadable: Vec<WalFile>,
}

/// The grace when none is given (prune's `--grace` default).
pub const DEFAULT_WAL_GRACE_SECS: u64 = 3600;

pub const HELD_NO_POLICY: &str =
    "no physical base backup is kept and no --keep-wal-within was given";

impl WalPlan {
    pub fn bytes(&self) -> u64 {
        self.delete.iter().map(|(_, b)| b).sum()
    }

    pub fn by_timeline(&self) -> Vec<TimelineDeletion> {
        let mut out: BTreeMap<u32, TimelineDeletion> = BTreeMap::new();
        for (file, bytes) in &self.delete {
            let name = file.name();
            let t = out
                .entry(file.timeline())
                .or_insert_with(|| TimelineDeletion {
                    timeline: file.timeline(),
                    files: 0,
                    first: name.clone(),
                    last: name.clone(),
                    bytes: 0,
                });
            t.files += 1;
            t.bytes += bytes;
            t.last = name;
        }
        out.into_values().collect()
    }
}

/// Decide. `files` is the archive's listing, `stats` the headers of the
/// `undecided` ones.
pub fn plan(
    files: &[WalFile],
    bases: &[KeptBase],
    stats: &HashMap<WalFile, Stat>,
    rules: &WalRules,
    now: Timestamp,
) -> WalPlan {
    let mut out = WalPlan::default();
    if bases.is_empty() && rules.keep_within_secs.is_none() {
        out.held = Some(HELD_NO_POLICY);
        out.kept = files.len() as u64;
        return out;
    }
    let window = rules
        .keep_within_secs
        .unwrap_or(0)
        .max(rules.grace_secs)
        .min(i64::MAX as u64) as i64;
    let cutoff = now.secs.saturating_sub(window);
    let mut sorted = files.to_vec();
    sorted.sort_by_key(|f| (position(f), *f));
    for file in sorted {
        if needed_by_bases(&file, bases) {
            out.kept += 1;
            continue;
        }
        match stats.get(&file) {
            Some(Stat::Read { pushed, bytes }) if pushed.secs < cutoff => {
                out.delete.push((file, *bytes));
            }
            Some(Stat::Read { .. }) => out.kept += 1,
            Some(Stat::Unreadable) => {
                out.unreadable.push(file);
                out.kept += 1;
            }
            // Not in the listing the headers were read from (pushed since,
            // or deleted since): nothing is known, so it stays.
            None => out.kept += 1,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;
    const DAY: i64 = 86_400;

    fn f(name: &str) -> WalFile {
        WalFile::parse(name).unwrap()
    }

    fn base(timeline: u32, start_seg: u64, stop_seg: u64) -> KeptBase {
        let size = 16u64 << 20;
        KeptBase {
            id: Id::from_bytes([timeline as u8; 32]),
            time: Timestamp { secs: 0, nanos: 0 },
            base: BaseBackup {
                system_identifier: 1,
                wal_segment_size: size,
                start_timeline: timeline,
                start_lsn: start_seg * size + 0x28,
                stop_timeline: timeline,
                stop_lsn: stop_seg * size + 0x100,
            },
        }
    }

    fn pushed_days_ago(files: &[WalFile], days: i64) -> HashMap<WalFile, Stat> {
        files
            .iter()
            .map(|f| {
                (
                    *f,
                    Stat::Read {
                        pushed: Timestamp {
                            secs: NOW - days * DAY,
                            nanos: 0,
                        },
                        bytes: 100,
                    },
                )
            })
            .collect()
    }

    fn rules(within_days: Option<u64>) -> WalRules {
        WalRules {
            keep_within_secs: within_days.map(|d| d * DAY as u64),
            grace_secs: 3600,
        }
    }

    fn names(plan: &WalPlan) -> Vec<String> {
        plan.delete.iter().map(|(f, _)| f.name()).collect()
    }

    fn archive() -> Vec<WalFile> {
        [
            "000000010000000000000001",
            "000000010000000000000002",
            "000000010000000000000002.00000028.backup",
            "000000010000000000000003",
            "000000010000000000000004",
            "000000010000000000000004.00000028.backup",
            "000000010000000000000005.partial",
            "00000002.history",
            "000000020000000000000003",
            "000000020000000000000005",
            "000000020000000000000006",
        ]
        .iter()
        .map(|n| f(n))
        .collect()
    }

    #[test]
    fn keeps_from_each_base_backups_start_on_its_and_later_timelines() {
        let files = archive();
        let bases = [base(1, 4, 4)];
        let stats = pushed_days_ago(&undecided(&files, &bases), 30);
        let plan = plan(
            &files,
            &bases,
            &stats,
            &rules(None),
            Timestamp {
                secs: NOW,
                nanos: 0,
            },
        );
        assert_eq!(
            names(&plan),
            [
                "000000010000000000000001",
                "000000010000000000000002",
                "000000010000000000000002.00000028.backup",
                "000000010000000000000003",
                "000000020000000000000003",
            ]
        );
        assert_eq!(plan.kept, 6);
        assert_eq!(plan.by_timeline()[0].files, 4);
        assert_eq!(plan.by_timeline()[1].first, "000000020000000000000003");
        assert_eq!(plan.bytes(), 500);
    }

    #[test]
    fn the_window_and_the_grace_keep_what_was_pushed_recently() {
        let files = archive();
        let bases = [base(2, 6, 6)];
        let mut stats = pushed_days_ago(&undecided(&files, &bases), 3);
        let at = Timestamp {
            secs: NOW,
            nanos: 0,
        };
        assert!(plan(&files, &bases, &stats, &rules(Some(7)), at)
            .delete
            .is_empty());
        assert_eq!(
            plan(&files, &bases, &stats, &rules(Some(2)), at)
                .delete
                .len(),
            9
        );
        // Pushed a minute ago: within the grace, whatever the window.
        stats.insert(
            f("000000010000000000000001"),
            Stat::Read {
                pushed: Timestamp {
                    secs: NOW - 60,
                    nanos: 0,
                },
                bytes: 1,
            },
        );
        stats.insert(f("000000010000000000000002"), Stat::Unreadable);
        let p = plan(&files, &bases, &stats, &rules(Some(0)), at);
        assert_eq!(p.delete.len(), 7);
        assert_eq!(p.unreadable, [f("000000010000000000000002")]);
        assert!(!names(&p).contains(&"000000010000000000000001".to_string()));
    }

    #[test]
    fn without_a_base_backup_or_a_window_nothing_goes() {
        let files = archive();
        let stats = pushed_days_ago(&files, 365);
        let at = Timestamp {
            secs: NOW,
            nanos: 0,
        };
        let p = plan(&files, &[], &stats, &rules(None), at);
        assert!(p.delete.is_empty());
        assert_eq!(p.held, Some(HELD_NO_POLICY));
        // A window alone is a policy: all but the history file goes.
        let p = plan(&files, &[], &stats, &rules(Some(7)), at);
        assert_eq!(p.delete.len(), files.len() - 1);
    }
}
