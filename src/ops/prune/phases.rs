//! Two-phase deletion, planned: which packs to mark, which marked packs to
//! delete now, which to take back because a snapshot uses them again.
//! Pure, like `plan.rs`, whose plan it refines: `plan.rs` says what is
//! unused today; this says what may go.
//!
//! A marked pack may be deleted when all of these hold:
//! - its mark is sealed (the locks were listed after the mark was stored);
//! - the grace period has passed since it was marked;
//! - no holder named by the seal still holds a live lock: every backup
//!   that started before the mark was visible has ended;
//! - it is still unused (no snapshot needs a blob whose kept copy is in it).
//!
//! Every backup that starts after a mark is visible honours it (never
//! deduplicates against the pack), so once the holders are gone nothing
//! still running can come to use the pack. See format-spec, "Deletion".

use std::collections::{BTreeMap, HashMap, HashSet};

use super::plan::{PrunePlan, COMPACT_INDEX_OBJECTS};
use crate::format::index::{IndexBody, IndexPack};
use crate::format::marks::{Holder, Marks};
use crate::format::{Id, Timestamp};

/// What the two-phase planner knows besides the one-phase plan.
pub struct PhaseInput<'a> {
    pub index: &'a [(Id, IndexBody)],
    pub marks: &'a [(Id, Marks)],
    /// Holders of the live locks other than our own, listed before planning.
    pub live: &'a HashSet<Holder>,
    /// Sizes of stored packs that no index names, where known.
    pub unindexed_sizes: &'a HashMap<Id, u64>,
    pub now: Timestamp,
    /// Seconds a pack stays marked before it may be deleted.
    pub grace_secs: i64,
}

/// A marked pack left marked, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Its mark is not sealed yet (a prune was interrupted): sealed now.
    Unsealed,
    /// The grace period runs until this time.
    Grace(Timestamp),
    /// A backup that started before the mark still runs.
    Holder,
    /// Its used blobs are copied out in this run; deleted next time.
    Repacked,
}

/// A mark object rewritten without some of its packs (deleted, used
/// again, or gone), or sealed.
#[derive(Debug, Clone, PartialEq)]
pub struct Replace {
    pub old: Id,
    /// `None` when no pack of it is left: the old mark is only deleted.
    pub new: Option<Marks>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct PhasePlan {
    /// Packs to mark now (unused, unindexed, or repacked in this run).
    pub mark: Vec<Id>,
    /// Marked packs to delete now, with their sizes (0 when unknown).
    pub delete: Vec<(Id, u64)>,
    /// Marked packs that snapshots use again: their marks are dropped.
    pub resurrect: Vec<Id>,
    /// Marked packs that stay marked.
    pub waiting: Vec<(Id, Wait)>,
    /// Marks to seal (with the holders listed after storing `mark`).
    pub seal: Vec<(Id, Marks)>,
    /// Sealed marks to rewrite once the deletions are done.
    pub replace: Vec<Replace>,
    /// Whether to store a new index without the deleted packs.
    pub rewrite_index: bool,
    /// The packs the new index lists (all indexed packs but the deleted).
    pub keep: Vec<IndexPack>,
    /// The index objects it supersedes.
    pub supersede: Vec<Id>,
}

impl PhasePlan {
    pub fn freed_bytes(&self) -> u64 {
        self.delete.iter().map(|(_, s)| s).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.mark.is_empty()
            && self.delete.is_empty()
            && self.resurrect.is_empty()
            && self.seal.is_empty()
            && self.replace.is_empty()
            && !self.rewrite_index
    }
}

/// Decide. `base` is the one-phase plan for the same picture.
pub fn plan_phases(base: &PrunePlan, input: &PhaseInput<'_>) -> PhasePlan {
    let mut indexed: BTreeMap<Id, &IndexPack> = BTreeMap::new();
    for (_, body) in input.index {
        for p in &body.packs {
            indexed.entry(p.id).or_insert(p);
        }
    }
    let unused: HashMap<Id, u64> = base
        .delete
        .iter()
        .copied()
        .chain(
            base.unindexed
                .iter()
                .map(|id| (*id, input.unindexed_sizes.get(id).copied().unwrap_or(0))),
        )
        .collect();
    let repacked: HashSet<Id> = base.repack.iter().map(|r| r.pack).collect();
    let used: HashSet<Id> = base.keep.iter().map(|p| p.id).collect();

    let mut out = PhasePlan::default();
    let mut marked: HashSet<Id> = HashSet::new();
    let mut deleting: HashSet<Id> = HashSet::new();
    // Oldest first, so a pack marked twice is judged by its oldest mark.
    let mut marks: Vec<&(Id, Marks)> = input.marks.iter().collect();
    marks.sort_by(|a, b| a.1.time.cmp(&b.1.time).then(a.0.cmp(&b.0)));
    for (mark_id, mark) in marks {
        let holders_gone = mark
            .holders
            .as_ref()
            .is_some_and(|h| h.iter().all(|h| !input.live.contains(h)));
        let until = Timestamp {
            secs: mark.time.secs.saturating_add(input.grace_secs),
            nanos: mark.time.nanos,
        };
        let mut left = Vec::new();
        for pack in &mark.packs {
            if !marked.insert(*pack) {
                // Marked by an older mark too: judged there, kept here.
                left.push(*pack);
                continue;
            }
            if used.contains(pack) {
                out.resurrect.push(*pack);
            } else if repacked.contains(pack) {
                out.waiting.push((*pack, Wait::Repacked));
                left.push(*pack);
            } else if let Some(size) = unused.get(pack) {
                let wait = if !mark.sealed() {
                    Some(Wait::Unsealed)
                } else if input.now < until {
                    Some(Wait::Grace(until))
                } else if !holders_gone {
                    Some(Wait::Holder)
                } else {
                    None
                };
                match wait {
                    Some(w) => {
                        out.waiting.push((*pack, w));
                        left.push(*pack);
                    }
                    None => {
                        if deleting.insert(*pack) {
                            out.delete.push((*pack, *size));
                        }
                    }
                }
            }
            // Otherwise the pack is gone from storage: nothing to keep.
        }
        let changed = left.len() != mark.packs.len();
        if !mark.sealed() {
            out.seal
                .push((*mark_id, Marks::new(mark.time, vec![*mark_id], None, left)));
        } else if changed {
            out.replace.push(Replace {
                old: *mark_id,
                new: (!left.is_empty())
                    .then(|| Marks::new(mark.time, vec![*mark_id], mark.holders.clone(), left)),
            });
        }
    }
    out.mark = unused
        .keys()
        .chain(repacked.iter())
        .filter(|id| !marked.contains(*id))
        .copied()
        .collect();
    out.mark.sort();
    out.delete.sort();
    out.resurrect.sort();
    out.resurrect.dedup();
    out.waiting.sort_by_key(|(id, _)| *id);

    let drops_indexed = out.delete.iter().any(|(id, _)| indexed.contains_key(id));
    out.rewrite_index =
        drops_indexed || !base.vanished.is_empty() || base.supersede.len() > COMPACT_INDEX_OBJECTS;
    if out.rewrite_index {
        let vanished: HashSet<&Id> = base.vanished.iter().collect();
        out.keep = indexed
            .values()
            .filter(|p| !deleting.contains(&p.id) && !vanished.contains(&p.id))
            .map(|p| (*p).clone())
            .collect();
        out.supersede = base.supersede.clone();
    }
    out
}
