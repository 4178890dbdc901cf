//! `check`: prove what the repository holds and name what any damage
//! touches. Structure (always): keys, index objects, pack sizes and headers
//! against the index, every snapshot's trees and the presence of every blob
//! they reference. Data (on request): whole packs downloaded, their names
//! verified and every blob decrypted and re-hashed.
//!
//! A check writes nothing but its verification record (with `rotate`), and
//! reads what was listed when it started, so it can run beside backups and
//! a prune: objects that appear later are not its business, and a pack
//! that disappears is only damage if an index object still names it.

pub mod attribute;
pub mod packs;
pub mod plan;
pub mod rotation;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use rayon::prelude::*;

use self::attribute::{Attribution, DamagedPath, LostBlobs};
use self::packs::PackVerdict;
use self::plan::{PackInfo, Subset};
use super::reachable::reachable;
use crate::cache::BlobLocation;
use crate::error::{Error, ErrorKind, Result};
use crate::format::delta::MAX_LINKS;
use crate::format::index::IndexPack;
use crate::format::marks::Marks;
use crate::format::snapshot::Snapshot;
use crate::format::{BlobKind, Id, Timestamp};
use crate::progress::Progress;
use crate::repo::{ObjectKind, Repository};

/// How much pack data to download and verify.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum DataCheck {
    /// Sizes and headers only.
    #[default]
    Headers,
    All,
    Subset(Subset),
}

#[derive(Debug, Clone, Default)]
pub struct CheckOptions {
    pub data: DataCheck,
    /// Verify the least recently verified packs first and record this run.
    pub rotate: bool,
    /// Orders a random subset (not used with `rotate`).
    pub seed: u64,
    pub now: Timestamp,
}

/// Something wrong with one stored object.
#[derive(Debug, Clone)]
pub struct Problem {
    pub object: Damaged,
    pub id: Id,
    pub message: String,
}

/// The kind of object a problem is about. Its words are part of check's
/// output and `--json`, so they never change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Damaged {
    Key,
    VerificationRecord,
    Index,
    Pack,
    Snapshot,
    Tree,
    Blob,
    Marks,
}

impl Damaged {
    pub fn as_str(self) -> &'static str {
        match self {
            Damaged::Key => "key",
            Damaged::VerificationRecord => "verification record",
            Damaged::Index => "index",
            Damaged::Pack => "pack",
            Damaged::Snapshot => "snapshot",
            Damaged::Tree => "tree",
            Damaged::Blob => "blob",
            Damaged::Marks => "marks",
        }
    }
}

impl std::fmt::Display for Damaged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone)]
pub struct SnapshotDamage {
    pub id: Id,
    pub snapshot: Snapshot,
    pub paths: Vec<DamagedPath>,
}

#[derive(Debug, Clone, Default)]
pub struct CheckStats {
    pub keys: u64,
    pub index_objects: u64,
    pub packs: u64,
    pub packs_read: u64,
    pub bytes_read: u64,
    pub snapshots: u64,
    pub trees: u64,
    pub data_blobs: u64,
}

#[derive(Debug, Default)]
pub struct CheckReport {
    /// Damage: anything here makes the check fail.
    pub problems: Vec<Problem>,
    /// Worth knowing, not damage (unindexed packs, a concurrent prune).
    pub warnings: Vec<String>,
    /// Snapshots that lose data, with the paths affected.
    pub damaged: Vec<SnapshotDamage>,
    /// Snapshots every byte of which is accounted for.
    pub untouched: Vec<(Id, Snapshot)>,
    /// Blobs referenced by snapshots that cannot be read back.
    pub lost: LostBlobs,
    /// Packs read in full and found intact.
    pub verified: Vec<Id>,
    /// Packs in storage that no index names.
    pub unindexed: Vec<Id>,
    /// Packs marked for deletion (two-phase prune), and those of them that
    /// snapshots use (the next prune takes their marks back).
    pub marked: Vec<Id>,
    pub marked_in_use: Vec<Id>,
    pub stats: CheckStats,
}

impl CheckReport {
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }

    /// Whether the index misses something the packs may still hold: data
    /// counted as lost may then only be unindexed.
    pub fn index_incomplete(&self) -> bool {
        !self.unindexed.is_empty() || self.problems.iter().any(|p| p.object == Damaged::Index)
    }

    fn problem(&mut self, object: Damaged, id: Id, message: impl Into<String>) {
        self.problems.push(Problem {
            object,
            id,
            message: message.into(),
        });
    }
}

/// Run a check. `repo` should be opened with `IndexView::Unread`
/// and an in-memory cache: the check fills the cache itself from the index
/// objects it can read, so a damaged one does not stop it and a stale
/// local cache cannot hide a lost one.
pub fn check(repo: &Repository, opts: &CheckOptions, progress: &Progress) -> Result<CheckReport> {
    let mut report = CheckReport::default();

    let keys = repo.damaged_keys()?;
    report.stats.keys = repo.list_keys().map(|k| k.len() as u64).unwrap_or(0);
    for (id, e) in keys {
        report.problem(Damaged::Key, id, e.to_string());
    }

    // Index, then packs, then snapshots: a snapshot is stored after its
    // index, so every snapshot listed here has its index objects listed.
    let indexed = load_index(repo, &mut report)?;
    let stored: HashSet<Id> = repo.list_packs()?.into_iter().collect();
    let mut unindexed: Vec<&Id> = stored
        .iter()
        .filter(|id| !indexed.contains_key(id))
        .collect();
    unindexed.sort();
    report.unindexed = unindexed.iter().map(|id| **id).collect();
    for id in unindexed {
        report.warnings.push(format!(
            "pack {} is not in any index (left by an interrupted or running backup): prune will remove it, repair index would add it",
            id.short()
        ));
    }

    let marked = load_marks(repo, &mut report)?;

    let verifications = if opts.rotate {
        let v = rotation::load(repo)?;
        for (id, e) in &v.unreadable {
            report.problem(Damaged::VerificationRecord, *id, e.to_string());
        }
        v
    } else {
        rotation::Verifications::default()
    };
    let full: HashSet<Id> = match opts.data {
        DataCheck::Headers => HashSet::new(),
        DataCheck::All => indexed.keys().copied().collect(),
        DataCheck::Subset(subset) => {
            let infos: Vec<PackInfo> = indexed
                .values()
                .map(|(p, _)| PackInfo {
                    id: p.id,
                    size: p.size,
                    last_verified: verifications.last.get(&p.id).copied(),
                })
                .collect();
            plan::packs_to_read(&infos, subset, opts.rotate, opts.seed)
                .into_iter()
                .collect()
        }
    };
    let unusable = verify_packs(repo, &indexed, &full, &mut report, progress)?;

    let snapshots = load_snapshots(repo, &mut report)?;
    report.stats.snapshots = snapshots.len() as u64;
    find_lost(repo, &snapshots, &unusable, &marked, &mut report)?;
    attribute(repo, snapshots, &mut report);

    if opts.rotate && !report.verified.is_empty() {
        if let Err(e) = rotation::record(repo, &verifications, &report.verified, opts.now, &stored)
        {
            report
                .warnings
                .push(format!("could not store the verification record: {e}"));
        }
    }
    Ok(report)
}

/// Each indexed pack with the index objects naming it.
type Indexed = HashMap<Id, (IndexPack, Vec<Id>)>;

/// Read every index object; the unreadable ones are damage. The effective
/// index (present objects less those another present one supersedes) goes
/// into the repository's cache, where blob lookups find it.
fn load_index(repo: &Repository, report: &mut CheckReport) -> Result<Indexed> {
    let (bodies, unreadable) = read_each(repo, ObjectKind::Index, |id| repo.read_index(id))?;
    for (id, e) in unreadable {
        report.problem(Damaged::Index, id, e.to_string());
    }
    report.stats.index_objects = bodies.len() as u64;
    let superseded: HashSet<Id> = bodies
        .iter()
        .flat_map(|(_, b)| b.supersedes.iter().copied())
        .collect();
    let mut indexed = Indexed::new();
    for (id, body) in bodies {
        if superseded.contains(&id) {
            continue;
        }
        repo.index().add_index(Some(&id), &body)?;
        for pack in body.packs {
            indexed
                .entry(pack.id)
                .or_insert_with(|| (pack, vec![]))
                .1
                .push(id);
        }
    }
    report.stats.packs = indexed.len() as u64;
    Ok(indexed)
}

/// Verify every indexed pack (headers, or in full for those in `full`);
/// returns the packs no blob can be read from.
fn verify_packs(
    repo: &Repository,
    indexed: &Indexed,
    full: &HashSet<Id>,
    report: &mut CheckReport,
    progress: &Progress,
) -> Result<HashMap<Id, String>> {
    let mut order: Vec<&(IndexPack, Vec<Id>)> = indexed.values().collect();
    order.sort_by_key(|(p, _)| p.id);
    let total: u64 = order
        .iter()
        .filter(|(p, _)| full.contains(&p.id))
        .map(|(p, _)| p.size)
        .sum();
    progress.bytes_total.store(total, Ordering::Relaxed);
    // Packs are read by more threads than there are cores, so that one
    // waiting for storage leaves the others to keep the pool busy; the
    // pool's threads (one per core) open the blobs of every reader's
    // current piece. Each reader keeps one piece buffer for all its packs.
    let readers = std::thread::available_parallelism().map_or(2, |n| n.get()) * 2;
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let read_packs = || -> Result<Vec<(Id, PackVerdict)>> {
        let mut buf = Vec::new();
        let mut out = Vec::new();
        while !failed.load(Ordering::Relaxed) {
            let Some((pack, _)) = order.get(next.fetch_add(1, Ordering::Relaxed)) else {
                break;
            };
            let verdict = if full.contains(&pack.id) {
                packs::verify_full(repo, pack, &mut buf)
            } else {
                packs::verify_header(repo, pack)
            }
            .map_err(|e| {
                failed.store(true, Ordering::Relaxed);
                e.at(format!("pack {}", pack.id.short()))
            })?;
            progress.files.fetch_add(1, Ordering::Relaxed);
            progress
                .bytes_written
                .fetch_add(verdict.bytes_read, Ordering::Relaxed);
            out.push((pack.id, verdict));
        }
        Ok(out)
    };
    let mut verdicts = std::thread::scope(|s| -> Result<Vec<(Id, PackVerdict)>> {
        let mut handles = Vec::new();
        for _ in 0..readers.min(order.len()) {
            let spawned = std::thread::Builder::new().spawn_scoped(s, read_packs);
            match spawned {
                Ok(handle) => handles.push(handle),
                Err(e) => {
                    failed.store(true, Ordering::Relaxed);
                    let what = "start pack verification threads";
                    return Err(Error::with_source(ErrorKind::Io, what, e));
                }
            }
        }
        let mut all = Vec::new();
        for handle in handles {
            match handle.join() {
                Ok(verdicts) => all.extend(verdicts?),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        Ok(all)
    })?;
    verdicts.sort_unstable_by_key(|(id, _)| *id);

    // A pack gone since we listed the index is only damage if an index
    // object naming it is still there (a prune removes both).
    let present_index: HashSet<Id> = if verdicts.iter().any(|(_, v)| v.missing) {
        repo.list_objects(ObjectKind::Index)?.into_iter().collect()
    } else {
        HashSet::new()
    };
    let mut unusable = HashMap::new();
    for (id, verdict) in verdicts {
        if verdict.missing && !indexed[&id].1.iter().any(|i| present_index.contains(i)) {
            report.warnings.push(format!(
                "pack {} was removed while the check ran, with the index naming it (a concurrent prune)",
                id.short()
            ));
            continue;
        }
        report.stats.bytes_read += verdict.bytes_read;
        if verdict.bytes_read > 0 {
            report.stats.packs_read += 1;
        }
        if verdict.verified {
            report.verified.push(id);
        }
        for fault in &verdict.faults {
            report.problem(Damaged::Pack, id, fault.clone());
        }
        if verdict.unusable {
            unusable.insert(id, verdict.faults.join("; "));
        }
        for (kind, blob, reason) in verdict.bad_blobs {
            report
                .lost
                .insert((kind, blob), format!("in pack {}: {reason}", id.short()));
        }
    }
    Ok(unusable)
}

/// Objects read, and objects that could not be read with why.
pub(crate) type ReadEach<T> = (Vec<(Id, T)>, Vec<(Id, Error)>);

/// Read every object of `kind` in parallel. One removed since the listing
/// (by a concurrent prune, forget or check) is skipped; one that cannot be
/// read comes back as damage; an I/O failure stops the check.
pub(crate) fn read_each<T: Send>(
    repo: &Repository,
    kind: ObjectKind,
    read: impl Fn(&Id) -> Result<T> + Sync,
) -> Result<ReadEach<T>> {
    let ids = repo.list_objects(kind)?;
    let results: Vec<_> = ids.par_iter().map(|id| (*id, read(id))).collect();
    let (mut good, mut bad) = (Vec::new(), Vec::new());
    for (id, result) in results {
        match result {
            Ok(v) => good.push((id, v)),
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) if e.kind() == ErrorKind::Io => return Err(e),
            Err(e) => bad.push((id, e)),
        }
    }
    Ok((good, bad))
}

/// Every snapshot; one that cannot be read is damage (and lost whole).
fn load_snapshots(repo: &Repository, report: &mut CheckReport) -> Result<Vec<(Id, Snapshot)>> {
    let (mut out, unreadable) = read_each(repo, ObjectKind::Snapshot, |id| repo.load_snapshot(id))?;
    for (id, e) in unreadable {
        report.problem(Damaged::Snapshot, id, e.to_string());
    }
    out.sort_by(|a, b| a.1.time.cmp(&b.1.time).then(a.0.cmp(&b.0)));
    Ok(out)
}

/// Walk every snapshot's trees and find the blobs they reference that are
/// not indexed, or stored in a pack that cannot be used, or proven bad.
fn find_lost(
    repo: &Repository,
    snapshots: &[(Id, Snapshot)],
    unusable: &HashMap<Id, String>,
    marked: &HashSet<Id>,
    report: &mut CheckReport,
) -> Result<()> {
    let reach = reachable(repo, snapshots.iter().map(|(_, s)| s.root));
    note_marked_in_use(repo, &reach, marked, report)?;
    report.stats.trees = reach.trees.len() as u64;
    report.stats.data_blobs = reach.data.len() as u64;
    for (id, e) in &reach.unreadable {
        if e.kind() == ErrorKind::Io {
            return Err(Error::new(e.kind(), e.to_string()));
        }
        report.lost.insert((BlobKind::Tree, *id), e.to_string());
        report.problem(Damaged::Tree, *id, e.to_string());
    }
    let mut data: Vec<Id> = reach.data.into_iter().collect();
    data.sort_unstable();
    let bad = &report.lost;
    // A blob lost on its own: unindexed, in an unusable pack, or damaged.
    let own_fault = |id: &Id, loc: Option<&BlobLocation>| -> Option<String> {
        match loc {
            None => Some("not in the index".to_string()),
            Some(loc) => match unusable.get(&loc.pack) {
                Some(why) => Some(format!(
                    "stored in pack {}, which is unusable: {why}",
                    loc.pack.short()
                )),
                None => bad.get(&(BlobKind::Data, *id)).cloned(),
            },
        }
    };
    // A delta is lost with any link of its chain; each link is looked up
    // once.
    let why_lost = |id: &Id| -> Result<Option<String>> {
        let mut link = *id;
        for depth in 0..=MAX_LINKS {
            let loc = repo.blob_location(BlobKind::Data, &link)?;
            if let Some(why) = own_fault(&link, loc.as_ref()) {
                return Ok(Some(match depth {
                    0 => why,
                    1 => format!(
                        "stored as a delta against {}, which is lost: {why}",
                        link.short()
                    ),
                    _ => format!(
                        "stored as a delta whose chain passes through {}, which is lost: {why}",
                        link.short()
                    ),
                }));
            }
            match loc.and_then(|l| l.base) {
                Some(base) => link = base,
                None => return Ok(None),
            }
        }
        Ok(Some(format!(
            "its delta chain is longer than {MAX_LINKS} links"
        )))
    };
    let lost: Vec<(Id, String)> = data
        .par_iter()
        .filter_map(|id| why_lost(id).transpose().map(|r| r.map(|why| (*id, why))))
        .collect::<Result<_>>()?;
    for (id, reason) in lost {
        report.lost.entry((BlobKind::Data, id)).or_insert(reason);
    }
    // Bad blobs no snapshot references are no loss (their pack's fault is
    // reported on its own).
    report.lost.retain(|(kind, id), _| match kind {
        BlobKind::Tree => reach.trees.contains(id),
        BlobKind::Data => data.binary_search(id).is_ok(),
    });
    let mut blobs: Vec<_> = report
        .lost
        .iter()
        .filter(|(k, _)| k.0 == BlobKind::Data)
        .map(|(k, why)| (k.1, why.clone()))
        .collect();
    blobs.sort();
    for (id, why) in blobs {
        report.problem(Damaged::Blob, id, format!("data blob lost: {why}"));
    }
    Ok(())
}

/// Marks are not damage: a marked pack is still indexed and readable.
/// One that cannot be read is (prune ignores it, so it marks nothing).
fn load_marks(repo: &Repository, report: &mut CheckReport) -> Result<HashSet<Id>> {
    let (marks, unreadable) = read_each(repo, ObjectKind::Marks, |id| {
        Marks::decode(&repo.read_object(ObjectKind::Marks, id)?)
    })?;
    for (id, e) in unreadable {
        report.problem(
            Damaged::Marks,
            id,
            format!("{e} (prune ignores it; it may be deleted)"),
        );
    }
    let marked: HashSet<Id> = marks.into_iter().flat_map(|(_, m)| m.packs).collect();
    report.marked = marked.iter().copied().collect();
    report.marked.sort();
    Ok(marked)
}

/// Snapshots may use a marked pack: a backup that started before the mark
/// deduplicated against it. That is expected, and the next prune takes the
/// mark back instead of deleting the pack.
fn note_marked_in_use(
    repo: &Repository,
    reach: &super::reachable::Reachable,
    marked: &HashSet<Id>,
    report: &mut CheckReport,
) -> Result<()> {
    if marked.is_empty() {
        return Ok(());
    }
    let used = reach
        .trees
        .iter()
        .map(|id| (BlobKind::Tree, id))
        .chain(reach.data.iter().map(|id| (BlobKind::Data, id)));
    let mut in_use = HashSet::new();
    for (kind, id) in used {
        if let Some(loc) = repo.blob_location(kind, id)? {
            if marked.contains(&loc.pack) {
                in_use.insert(loc.pack);
            }
        }
    }
    report.marked_in_use = in_use.into_iter().collect();
    report.marked_in_use.sort();
    for id in &report.marked_in_use {
        report.warnings.push(format!(
            "pack {} is marked for deletion but snapshots use it (a backup that started before prune marked it): the next prune keeps it and takes the mark back",
            id.short()
        ));
    }
    Ok(())
}

/// Name the paths each snapshot loses; a snapshot with none is untouched.
fn attribute(repo: &Repository, snapshots: Vec<(Id, Snapshot)>, report: &mut CheckReport) {
    if report.lost.is_empty() {
        report.untouched = snapshots;
        return;
    }
    let mut walk = Attribution::new(repo, &report.lost);
    let mut damaged = Vec::new();
    let mut untouched = Vec::new();
    for (id, snapshot) in snapshots {
        let paths = walk.below(&snapshot.root);
        if paths.is_empty() {
            untouched.push((id, snapshot));
        } else {
            damaged.push(SnapshotDamage {
                id,
                snapshot,
                paths: paths.to_vec(),
            });
        }
    }
    report.damaged = damaged;
    report.untouched = untouched;
}
