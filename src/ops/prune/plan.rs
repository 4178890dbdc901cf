//! Prune planning: given the index, the packs in storage and the blobs
//! snapshots use, decide which packs to delete, which to repack and what
//! the new index holds. Pure: no I/O, so every decision is testable.

use std::collections::{HashMap, HashSet};

use crate::error::{Error, Result};
use crate::format::index::{IndexBlob, IndexBody, IndexPack};
use crate::format::{BlobKind, Id};

/// How much unused space to tolerate rather than repack.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PruneRules {
    /// Unused bytes left in kept packs, as a fraction of all bytes kept
    /// (0.05 = 5%). Packs with the largest unused share are repacked until
    /// the rest fits.
    pub max_unused: f64,
    /// Stop choosing packs to repack once their sizes add up to this.
    pub max_repack_bytes: Option<u64>,
}

impl Default for PruneRules {
    fn default() -> Self {
        PruneRules {
            max_unused: 0.05,
            max_repack_bytes: None,
        }
    }
}

/// What prune knows before deciding.
pub struct PlanInput<'a> {
    /// Every index object read, with its body.
    pub index: &'a [(Id, IndexBody)],
    /// Packs present in storage.
    pub stored: &'a HashSet<Id>,
    /// Blobs reachable from some snapshot.
    pub used: &'a HashSet<(BlobKind, Id)>,
    /// The most links a delta chain may have (the repository format's).
    pub max_delta_links: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repack {
    pub pack: Id,
    pub size: u64,
    /// The blobs to copy into new packs.
    pub keep: Vec<IndexBlob>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct PrunePlan {
    /// Indexed packs no snapshot needs a blob from.
    pub delete: Vec<(Id, u64)>,
    /// Packs in storage that no index names (left by killed runs).
    pub unindexed: Vec<Id>,
    pub repack: Vec<Repack>,
    /// Packs the index names that storage lacks and nothing needs: dropped
    /// from the index, nothing to delete.
    pub vanished: Vec<Id>,
    /// What the new index lists: every pack that stays, in full.
    pub keep: Vec<IndexPack>,
    /// The index objects the new index replaces.
    pub supersede: Vec<Id>,
    /// Whether the index changes at all.
    pub rewrite_index: bool,
    /// Stored bytes of used blobs, and of unused blobs left in kept packs.
    pub used_bytes: u64,
    pub unused_kept_bytes: u64,
    /// Total size of the `unindexed` packs (filled in by the caller, which
    /// asks storage; 0 when unknown).
    pub unindexed_bytes: u64,
}

impl PrunePlan {
    pub fn repack_bytes(&self) -> u64 {
        self.repack.iter().map(|r| r.size).sum()
    }

    pub fn repack_keep_bytes(&self) -> u64 {
        self.repack
            .iter()
            .flat_map(|r| &r.keep)
            .map(|b| u64::from(b.stored_len))
            .sum()
    }

    /// Bytes freed once done: every pack deleted (unused, unindexed or
    /// repacked) less what repacking writes again.
    pub fn freed_bytes(&self) -> u64 {
        let deleted: u64 = self.delete.iter().map(|(_, s)| s).sum();
        deleted
            + self.unindexed_bytes
            + self.repack_bytes().saturating_sub(self.repack_keep_bytes())
    }

    pub fn is_empty(&self) -> bool {
        self.delete.is_empty()
            && self.unindexed.is_empty()
            && self.repack.is_empty()
            && !self.rewrite_index
    }
}

/// Index objects beyond this many are merged into one even when nothing is
/// deleted, so opening a repository does not read thousands of them.
pub(crate) const COMPACT_INDEX_OBJECTS: usize = 32;

/// Decide. Refuses (as damage) when a used blob has no indexed copy in a
/// stored pack: deleting anything then could destroy the last copy of data
/// that repair might still find.
///
/// A delta needs its base: the base of every delta that stays (in a kept
/// pack, used or not, or copied by a repack) counts as used, and the plan
/// is made again until that adds nothing (once per link of the longest
/// chain).
///
/// The copies that stay must chain as readers may follow them: a blob
/// whose copies could lead through more than `max_delta_links` links (or
/// round a loop, which mixing copies written at different times could
/// make) must keep a copy stored whole, and the plan is made again.
pub fn plan(input: &PlanInput<'_>, rules: &PruneRules) -> Result<PrunePlan> {
    let mut used = input.used.clone();
    let mut whole: HashSet<(BlobKind, Id)> = HashSet::new();
    loop {
        let out = plan_for(input, &used, &whole, rules)?;
        let needed: Vec<(BlobKind, Id)> = staying(&out)
            .filter_map(|b| b.base)
            .map(|base| (BlobKind::Data, base))
            .filter(|b| !used.contains(b))
            .collect();
        if !needed.is_empty() {
            used.extend(needed);
            continue;
        }
        let too_long = over_long_chains(&out, input.max_delta_links);
        if too_long.is_empty() {
            return Ok(out);
        }
        // Any link of such a chain kept whole shortens it.
        let stored_whole = whole_copies(input);
        let fixable: Vec<(BlobKind, Id)> = too_long
            .iter()
            .filter(|id| stored_whole.contains(id))
            .map(|id| (BlobKind::Data, *id))
            .filter(|b| !whole.contains(b))
            .collect();
        if fixable.is_empty() {
            return Err(Error::corrupt(format!(
                "{} blobs would be left in delta chains of more than {} links (or loops) with no copy stored whole to keep instead; refusing to delete anything (check and repair the repository first)",
                too_long.len(),
                input.max_delta_links
            )));
        }
        whole.extend(fixable);
    }
}

/// The data blobs of which a stored pack holds a copy stored whole.
fn whole_copies(input: &PlanInput<'_>) -> HashSet<Id> {
    input
        .index
        .iter()
        .flat_map(|(_, body)| &body.packs)
        .filter(|p| input.stored.contains(&p.id))
        .flat_map(|p| &p.blobs)
        .filter(|b| b.kind == BlobKind::Data && b.base.is_none())
        .map(|b| b.id)
        .collect()
}

/// Every blob entry that stays: in kept packs and copied by repacks.
fn staying(plan: &PrunePlan) -> impl Iterator<Item = &IndexBlob> {
    plan.keep
        .iter()
        .flat_map(|p| &p.blobs)
        .chain(plan.repack.iter().flat_map(|r| &r.keep))
}

/// Data blobs that stay with no whole copy and whose chain, through any of
/// the copies that stay, has more than `max_links` links or loops, with
/// every link of those chains.
fn over_long_chains(plan: &PrunePlan, max_links: usize) -> Vec<Id> {
    // Readers prefer a whole copy; without one, any delta copy may be read.
    let whole: HashSet<Id> = staying(plan)
        .filter(|b| b.kind == BlobKind::Data && b.base.is_none())
        .map(|b| b.id)
        .collect();
    let mut bases: HashMap<Id, Vec<Id>> = HashMap::new();
    for b in staying(plan).filter(|b| b.kind == BlobKind::Data && !whole.contains(&b.id)) {
        if let Some(base) = b.base {
            bases.entry(b.id).or_default().push(base);
        }
    }
    let mut known: HashMap<Id, usize> = HashMap::new();
    let mut todo: Vec<Id> = bases
        .keys()
        .filter(|id| longest_chain(id, &bases, &mut known, max_links + 1) > max_links)
        .copied()
        .collect();
    let mut out: HashSet<Id> = HashSet::new();
    while let Some(id) = todo.pop() {
        if bases.contains_key(&id) && out.insert(id) {
            todo.extend(bases.get(&id).into_iter().flatten());
        }
    }
    let mut out: Vec<Id> = out.into_iter().collect();
    out.sort_unstable();
    out
}

/// The most links from `id` to a whole blob, or `cap` if that is more
/// (as a loop always is).
fn longest_chain(
    id: &Id,
    bases: &HashMap<Id, Vec<Id>>,
    known: &mut HashMap<Id, usize>,
    cap: usize,
) -> usize {
    if let Some(&n) = known.get(id) {
        return n;
    }
    if cap == 0 {
        return 0;
    }
    let n = bases.get(id).map_or(0, |next| {
        next.iter()
            .map(|b| 1 + longest_chain(b, bases, known, cap - 1))
            .max()
            .unwrap_or(0)
            .min(cap)
    });
    // Only a result not cut short by the cap is a blob's own.
    if n < cap {
        known.insert(*id, n);
    }
    n
}

/// `whole`: used blobs that must be kept as a whole copy.
fn plan_for(
    input: &PlanInput<'_>,
    used: &HashSet<(BlobKind, Id)>,
    whole: &HashSet<(BlobKind, Id)>,
    rules: &PruneRules,
) -> Result<PrunePlan> {
    // One entry per pack, however many index objects name it.
    let mut packs: Vec<&IndexPack> = Vec::new();
    let mut seen = HashSet::new();
    for (_, body) in input.index {
        for p in &body.packs {
            if seen.insert(p.id) {
                packs.push(p);
            }
        }
    }
    let mut out = PrunePlan {
        supersede: input.index.iter().map(|(id, _)| *id).collect(),
        ..PrunePlan::default()
    };
    out.supersede.sort();
    out.supersede.dedup();
    let (present, vanished): (Vec<&IndexPack>, Vec<&IndexPack>) = packs
        .into_iter()
        .partition(|p| input.stored.contains(&p.id));
    out.vanished = vanished.iter().map(|p| p.id).collect();
    out.unindexed = input
        .stored
        .iter()
        .filter(|id| !seen.contains(id))
        .copied()
        .collect();
    out.unindexed.sort();

    // Which copy of each used blob stays: the one in the pack that is the
    // most used, so a pack just written by an interrupted repack wins over
    // the half-empty pack it was copied from, and the next prune finishes
    // the job instead of undoing it.
    let mut order: Vec<(&IndexPack, u64)> = present
        .into_iter()
        .map(|p| {
            let used: u64 = p
                .blobs
                .iter()
                .filter(|b| used.contains(&(b.kind, b.id)))
                .map(|b| u64::from(b.stored_len))
                .sum();
            (p, used)
        })
        .collect();
    order.sort_by(|(a, ua), (b, ub)| {
        // Descending used share, compared exactly: ua/a.size vs ub/b.size.
        (u128::from(*ub) * u128::from(a.size.max(1)))
            .cmp(&(u128::from(*ua) * u128::from(b.size.max(1))))
            .then(a.id.cmp(&b.id))
    });
    let mut claimed: HashSet<(BlobKind, Id)> = HashSet::new();
    struct Verdict<'p> {
        pack: &'p IndexPack,
        live: Vec<IndexBlob>,
        live_bytes: u64,
    }
    let mut verdicts = Vec::new();
    for (pack, _) in order {
        let live: Vec<IndexBlob> = pack
            .blobs
            .iter()
            .filter(|b| {
                let key = (b.kind, b.id);
                used.contains(&key)
                    && (b.base.is_none() || !whole.contains(&key))
                    && claimed.insert(key)
            })
            .copied()
            .collect();
        let live_bytes = live.iter().map(|b| u64::from(b.stored_len)).sum();
        verdicts.push(Verdict {
            pack,
            live,
            live_bytes,
        });
    }
    let missing = used.iter().filter(|b| !claimed.contains(b)).count();
    if missing > 0 {
        return Err(Error::corrupt(format!(
            "{missing} blobs that snapshots use have no indexed copy in a stored pack; refusing to delete anything (the data is damaged: check and repair it first)"
        )));
    }

    let mut candidates = Vec::new();
    for v in verdicts {
        out.used_bytes += v.live_bytes;
        if v.live.is_empty() {
            out.delete.push((v.pack.id, v.pack.size));
        } else if v.live.len() == v.pack.blobs.len() {
            out.keep.push(v.pack.clone());
        } else {
            candidates.push(v);
        }
    }
    // Most wasteful first.
    candidates.sort_by(|a, b| {
        let (wa, wb) = (
            a.pack.size - a.live_bytes.min(a.pack.size),
            b.pack.size - b.live_bytes.min(b.pack.size),
        );
        (u128::from(wb) * u128::from(a.pack.size.max(1)))
            .cmp(&(u128::from(wa) * u128::from(b.pack.size.max(1))))
            .then(a.pack.id.cmp(&b.pack.id))
    });
    let mut unused: u64 = candidates
        .iter()
        .map(|v| v.pack.size.saturating_sub(v.live_bytes))
        .sum();
    let allowed = |unused: u64, used: u64| {
        let total = (used + unused) as f64;
        unused as f64 <= rules.max_unused.clamp(0.0, 1.0) * total
    };
    let mut repacking = 0u64;
    for v in candidates {
        let within_budget = rules
            .max_repack_bytes
            .is_none_or(|max| repacking + v.pack.size <= max);
        if !allowed(unused, out.used_bytes) && within_budget {
            repacking += v.pack.size;
            unused -= v.pack.size.saturating_sub(v.live_bytes);
            out.repack.push(Repack {
                pack: v.pack.id,
                size: v.pack.size,
                keep: v.live,
            });
        } else {
            out.keep.push(v.pack.clone());
        }
    }
    out.unused_kept_bytes = unused;
    out.keep.sort_by_key(|p| p.id);
    out.delete.sort();
    out.vanished.sort();
    out.rewrite_index = !out.delete.is_empty()
        || !out.repack.is_empty()
        || !out.vanished.is_empty()
        || out.supersede.len() > COMPACT_INDEX_OBJECTS;
    Ok(out)
}

/// Split the new index into objects of at most `max_blobs` blobs. Only the
/// last lists `supersede`: until it is stored nothing is replaced, and once
/// it is, the others are already there.
pub fn new_index_bodies(plan: &PrunePlan, max_blobs: usize) -> Vec<IndexBody> {
    index_bodies(&plan.keep, &plan.supersede, max_blobs)
}

/// `new_index_bodies` for any list of packs that stay.
pub fn index_bodies(keep: &[IndexPack], supersede: &[Id], max_blobs: usize) -> Vec<IndexBody> {
    let mut bodies = vec![];
    let mut current = IndexBody::default();
    let mut blobs = 0;
    for p in keep {
        if blobs > 0 && blobs + p.blobs.len() > max_blobs {
            bodies.push(std::mem::take(&mut current));
            blobs = 0;
        }
        blobs += p.blobs.len();
        current.packs.push(p.clone());
    }
    current.supersedes = supersede.to_vec();
    bodies.push(current);
    bodies
}
