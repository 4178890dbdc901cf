//! Rewrite snapshots that reference lost data. A file that lost chunks
//! keeps its size and every surviving chunk; each lost chunk becomes zeros
//! of the same length and the file is flagged damaged, so restore puts the
//! good bytes where they belong and reports the file instead of silently
//! handing back a hole or a shorter file. A folder whose listing is lost
//! becomes an empty folder, flagged damaged. The originals are kept unless
//! the caller forgets them.

use std::collections::HashMap;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::format::snapshot::Snapshot;
use crate::format::tree::{ChunkRef, Content, Tree, FLAG_DAMAGED};
use crate::format::{BlobKind, Id};
use crate::ops::check::attribute::{Attribution, LostBlobs};
use crate::ops::check::{CheckReport, Damaged, SnapshotDamage};
use crate::repo::{BlobWriter, ObjectKind, Repository};

/// Marks a repaired snapshot; its `repaired-from` meta names the original.
pub const REPAIRED_TAG: &str = "repaired";
pub const REPAIRED_FROM: &str = "repaired-from";

#[derive(Debug, Default)]
pub struct SnapshotRepairPlan {
    /// Snapshots to rewrite, with the paths that will be marked damaged.
    pub repair: Vec<SnapshotDamage>,
    /// Snapshots beyond repair (their root listing is lost), with why.
    pub beyond_repair: Vec<(Id, String)>,
    /// Snapshot objects that cannot be read at all.
    pub unreadable: Vec<(Id, String)>,
    /// Damaged snapshots an earlier run already repaired (original, copy):
    /// not repaired twice, only forgotten if asked.
    pub already_repaired: Vec<(Id, Id)>,
}

/// Plan from a check's findings. Pure.
pub fn plan(report: &CheckReport) -> SnapshotRepairPlan {
    let mut plan = SnapshotRepairPlan::default();
    let copies: HashMap<Id, Id> = report
        .untouched
        .iter()
        .filter_map(|(id, s)| Some((repaired_from(s)?, *id)))
        .collect();
    for d in &report.damaged {
        if let Some(copy) = copies.get(&d.id) {
            plan.already_repaired.push((d.id, *copy));
            continue;
        }
        match d.paths.iter().find(|p| p.path.is_empty()) {
            Some(root) => plan.beyond_repair.push((d.id, root.reason.clone())),
            None => plan.repair.push(d.clone()),
        }
    }
    plan.unreadable = report
        .problems
        .iter()
        .filter(|p| p.object == Damaged::Snapshot)
        .map(|p| (p.id, p.message.clone()))
        .collect();
    plan
}

#[derive(Debug, Default)]
pub struct RepairOutcome {
    /// (original, repaired) snapshot ids.
    pub written: Vec<(Id, Id)>,
    pub forgotten: Vec<Id>,
}

/// Write the repaired snapshots (blobs and trees first, then the snapshot
/// objects), then, with `forget`, remove the originals.
pub fn execute(
    repo: &Arc<Repository>,
    plan: &SnapshotRepairPlan,
    lost: &LostBlobs,
    forget: bool,
) -> Result<RepairOutcome> {
    let writer = BlobWriter::new(repo.clone(), None);
    let mut rewrite = Rewriter {
        repo,
        writer: &writer,
        damage: Attribution::new(repo, lost),
        lost,
        done: HashMap::new(),
    };
    let mut repaired = Vec::new();
    for d in &plan.repair {
        let root = rewrite.tree(&d.snapshot.root)?;
        repaired.push((d.id, repaired_snapshot(&d.id, &d.snapshot, root)));
    }
    drop(rewrite);
    writer.finish()?;
    let mut outcome = RepairOutcome::default();
    for (original, snapshot) in repaired {
        outcome
            .written
            .push((original, repo.save_snapshot(&snapshot)?));
    }
    if forget {
        for (original, _) in outcome.written.iter().chain(&plan.already_repaired) {
            repo.delete_object(ObjectKind::Snapshot, original)?;
            outcome.forgotten.push(*original);
        }
    }
    Ok(outcome)
}

/// The snapshot `s` is a repaired copy of, if it is one.
pub fn repaired_from(s: &Snapshot) -> Option<Id> {
    s.meta
        .iter()
        .find(|(k, _)| k == REPAIRED_FROM)
        .and_then(|(_, v)| Id::from_slice(v))
}

fn repaired_snapshot(original: &Id, s: &Snapshot, root: Id) -> Snapshot {
    let mut out = s.clone();
    out.root = root;
    if !out.tags.iter().any(|t| t == REPAIRED_TAG) {
        out.tags.push(REPAIRED_TAG.to_string());
    }
    out.meta.retain(|(k, _)| k != REPAIRED_FROM);
    out.meta
        .push((REPAIRED_FROM.to_string(), original.as_bytes().to_vec()));
    out
}

struct Rewriter<'a> {
    repo: &'a Repository,
    writer: &'a BlobWriter,
    damage: Attribution<'a>,
    lost: &'a LostBlobs,
    /// Trees already rewritten (snapshots share most of theirs).
    done: HashMap<Id, Id>,
}

impl Rewriter<'_> {
    /// The id of `tree` with everything below it repaired; the same id if
    /// nothing below it is damaged.
    fn tree(&mut self, id: &Id) -> Result<Id> {
        if self.damage.below(id).is_empty() {
            return Ok(*id);
        }
        if let Some(done) = self.done.get(id) {
            return Ok(*done);
        }
        let mut tree = self.repo.read_tree(id)?;
        for entry in &mut tree.entries {
            let subtree = entry.subtree();
            match (&mut entry.content, subtree) {
                (Content::File { chunks }, _) => {
                    let lost = self.replace_lost(chunks)?;
                    entry.flags |= if lost { FLAG_DAMAGED } else { 0 };
                }
                (_, Some(sub)) => {
                    let listing_lost = self.damage.below(&sub).iter().any(|d| d.path.is_empty());
                    let new = if listing_lost {
                        entry.flags |= FLAG_DAMAGED;
                        self.writer.save(BlobKind::Tree, Tree::default().encode())?
                    } else {
                        self.tree(&sub)?
                    };
                    entry.content = Content::Dir { subtree: new };
                }
                _ => {}
            }
        }
        let new = self.writer.save(BlobKind::Tree, tree.encode())?;
        self.done.insert(*id, new);
        Ok(new)
    }

    /// How many zeros stand in for a lost chunk: its length as the file
    /// records it, if no more than the index says the chunk held (or, with
    /// no index entry left, than the largest chunk the chunker cuts). A
    /// damaged length must not become a 4 GiB allocation.
    fn lost_chunk_len(&self, c: &ChunkRef) -> Result<usize> {
        let (bound, what) = match self.repo.blob_location(BlobKind::Data, &c.id)? {
            Some(loc) => (loc.raw_len, "its index entry says"),
            None => (self.repo.config().chunker.max, "the largest chunk is"),
        };
        if c.len > bound {
            return Err(Error::corrupt(format!(
                "lost chunk {} is recorded as {} bytes, but {what} {bound}",
                c.id.short(),
                c.len
            )));
        }
        usize::try_from(c.len).map_err(|_| Error::invalid("chunk length does not fit in memory"))
    }

    /// Swap each lost chunk for zeros of its length; true if any was lost.
    fn replace_lost(&self, chunks: &mut [ChunkRef]) -> Result<bool> {
        let mut any = false;
        for c in chunks.iter_mut() {
            if self.lost.contains_key(&(BlobKind::Data, c.id)) {
                any = true;
                let zeros = vec![0u8; self.lost_chunk_len(c)?];
                c.id = self.writer.save(BlobKind::Data, zeros)?;
                if self.lost.contains_key(&(BlobKind::Data, c.id)) {
                    return Err(Error::corrupt(
                        "the chunk of zeros that replaces lost data is itself lost",
                    ));
                }
            }
        }
        Ok(any)
    }
}
