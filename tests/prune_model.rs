//! A model of two-phase deletion: backups, prunes, forgets and crashes as
//! small atomic steps on an in-memory picture of the repository, explored
//! in many seeded interleavings. Prune decides with the real planners
//! (`decide`, `plan_phases`) and acts in the order `execute_phases` does;
//! backups take their lock, read the marks and index, reuse or write blobs,
//! index them and commit, as the real ones do. Backups store some new blobs
//! as deltas against a blob they may reuse, whole or itself a delta, in
//! chains of up to `MAX_LINKS` links. After every step, every stored
//! snapshot must find each blob it uses indexed in a stored pack, and
//! every link of a delta's chain too, ending at a whole blob.
//!
//! Pure and deterministic: no files, no processes, no clock (the model's
//! clock advances one second per step).

use std::collections::{BTreeMap, HashMap, HashSet};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use vault::format::delta::MAX_LINKS;
use vault::format::index::{IndexBlob, IndexBody, IndexPack};
use vault::format::marks::{Holder, Marks};
use vault::format::{BlobKind, Id, Timestamp};
use vault::ops::prune::{decide, index_bodies, plan_phases, PhaseInput, PruneRules, TwoPhasePlan};

fn id(tag: u8, n: u64) -> Id {
    let mut b = [0u8; 32];
    b[0] = tag;
    b[1..9].copy_from_slice(&n.to_le_bytes());
    Id::from_bytes(b)
}

/// How the modelled writers behave; the broken variants prove the model
/// can see a lost blob.
#[derive(Clone, Copy, PartialEq)]
enum Variant {
    Correct,
    BackupsIgnoreMarks,
    PruneIgnoresHolders,
    /// Prune is shown the index without the deltas' bases.
    PruneIgnoresBases,
}

/// A pack's blobs: each blob, and the base it is a delta against.
type Blobs = Vec<(u64, Option<u64>)>;

fn num(id: &Id) -> u64 {
    u64::from_le_bytes(id.as_bytes()[1..9].try_into().expect("8 bytes"))
}

#[derive(Default)]
struct Store {
    packs: HashMap<Id, Blobs>,
    index: BTreeMap<Id, IndexBody>,
    marks: BTreeMap<Id, Marks>,
    snapshots: BTreeMap<Id, HashSet<u64>>,
    /// Live locks by process number.
    locks: BTreeMap<usize, Holder>,
    next: u64,
    now: i64,
    /// Packs deleted so far, to show the deleting phase is reached.
    deleted: usize,
    /// The most links a chain written so far has, to show chains form.
    longest_chain: usize,
}

impl Store {
    fn fresh(&mut self, tag: u8) -> Id {
        self.next += 1;
        id(tag, self.next)
    }

    fn time(&self) -> Timestamp {
        Timestamp {
            secs: self.now,
            nanos: 0,
        }
    }

    fn index_pack(&self, pack: &Id) -> IndexPack {
        let blobs = &self.packs[pack];
        IndexPack {
            id: *pack,
            size: blobs.len() as u64 * 100,
            blobs: blobs
                .iter()
                .enumerate()
                .map(|(i, (b, base))| IndexBlob {
                    kind: BlobKind::Data,
                    id: id(1, *b),
                    offset: i as u32 * 100,
                    stored_len: 100,
                    raw_len: 100,
                    base: base.map(|x| id(1, x)),
                })
                .collect(),
        }
    }

    /// Packs the effective index names, with their blobs and bases.
    fn indexed(&self) -> HashMap<Id, HashMap<u64, Option<u64>>> {
        let superseded: HashSet<&Id> = self.index.values().flat_map(|b| &b.supersedes).collect();
        let mut out: HashMap<Id, HashMap<u64, Option<u64>>> = HashMap::new();
        for (iid, body) in &self.index {
            if superseded.contains(iid) {
                continue;
            }
            for p in &body.packs {
                let e = out.entry(p.id).or_default();
                e.extend(
                    p.blobs
                        .iter()
                        .map(|b| (num(&b.id), b.base.as_ref().map(num))),
                );
            }
        }
        out
    }

    /// The invariant: every blob a snapshot uses is indexed in a stored
    /// pack, and so is every link of its chain, within `MAX_LINKS` links.
    fn lost(&self) -> Option<String> {
        let indexed = self.indexed();
        let stored: Vec<&HashMap<u64, Option<u64>>> = indexed
            .iter()
            .filter(|(p, _)| self.packs.contains_key(*p))
            .map(|(_, bs)| bs)
            .collect();
        for (sid, blobs) in &self.snapshots {
            for b in blobs {
                if !readable(&stored, *b, MAX_LINKS) {
                    return Some(format!("snapshot {} lost blob {b}", sid.short()));
                }
            }
        }
        None
    }
}

/// Whether some copy of blob `b` among `packs` is whole, or a delta whose
/// base is readable, within `links` more links.
fn readable(packs: &[&HashMap<u64, Option<u64>>], b: u64, links: usize) -> bool {
    packs.iter().any(|bs| match bs.get(&b) {
        None => false,
        Some(None) => true,
        Some(Some(base)) => links > 0 && readable(packs, *base, links - 1),
    })
}

/// The fewest links from each blob of `usable` to a whole copy, for the
/// blobs that get there within `MAX_LINKS` (as `has_blob` asks).
fn chain_links(usable: &[(u64, Option<u64>)]) -> HashMap<u64, usize> {
    let mut links: HashMap<u64, usize> = usable
        .iter()
        .filter(|(_, base)| base.is_none())
        .map(|(b, _)| (*b, 0))
        .collect();
    for _ in 0..MAX_LINKS {
        for (b, base) in usable {
            if let Some(n) = base.and_then(|x| links.get(&x).copied()) {
                if n < MAX_LINKS && links.get(b).is_none_or(|m| n + 1 < *m) {
                    links.insert(*b, n + 1);
                }
            }
        }
    }
    links
}

enum Backup {
    Idle,
    Locked,
    Working {
        /// What it may deduplicate against (indexed, unmarked, every link
        /// of its chain too), and how many links its chain has.
        view: HashMap<u64, usize>,
        uses: HashSet<u64>,
        written: Vec<Id>,
        todo: Vec<u64>,
    },
    Indexed {
        uses: HashSet<u64>,
    },
}

enum Prune {
    Idle,
    Locked,
    Read {
        marks: Vec<(Id, Marks)>,
        live: HashSet<Holder>,
    },
    Planned(Box<TwoPhasePlan>, usize),
}

struct Model {
    s: Store,
    backups: Vec<Backup>,
    prune: Prune,
    variant: Variant,
    grace: i64,
}

const PRUNE: usize = 1000;

impl Model {
    fn holder(&self, proc: usize) -> Holder {
        Holder {
            host: "h".into(),
            pid: proc as u32,
            created: self.s.time(),
        }
    }

    fn step_backup(&mut self, i: usize, rng: &mut StdRng) {
        let state = std::mem::replace(&mut self.backups[i], Backup::Idle);
        self.backups[i] = match state {
            Backup::Idle => {
                let h = self.holder(i);
                self.s.locks.insert(i, h);
                Backup::Locked
            }
            Backup::Locked => {
                // After the lock: the index and the marks, as sync_index does.
                let marked: HashSet<Id> = self
                    .s
                    .marks
                    .values()
                    .flat_map(|m| m.packs.clone())
                    .collect();
                let usable: Vec<(u64, Option<u64>)> = self
                    .s
                    .indexed()
                    .into_iter()
                    .filter(|(p, _)| {
                        self.variant == Variant::BackupsIgnoreMarks || !marked.contains(p)
                    })
                    .flat_map(|(_, bs)| bs)
                    .collect();
                let view = chain_links(&usable);
                let todo = (0..rng.gen_range(1..4))
                    .map(|_| rng.gen_range(0..8))
                    .collect();
                Backup::Working {
                    view,
                    uses: HashSet::new(),
                    written: vec![],
                    todo,
                }
            }
            Backup::Working {
                view,
                mut uses,
                mut written,
                mut todo,
            } => {
                if let Some(b) = todo.pop() {
                    if !view.contains_key(&b) && !uses.contains(&b) {
                        let mut bases: Vec<u64> = view
                            .iter()
                            .filter(|(x, links)| **links < MAX_LINKS && **x != b)
                            .map(|(x, _)| *x)
                            .collect();
                        bases.sort_unstable();
                        let base = (!bases.is_empty() && rng.gen_bool(0.7))
                            .then(|| bases[rng.gen_range(0..bases.len())]);
                        if let Some(links) = base.and_then(|x| view.get(&x)) {
                            self.s.longest_chain = self.s.longest_chain.max(links + 1);
                        }
                        let p = self.s.fresh(2);
                        self.s.packs.insert(p, vec![(b, base)]);
                        written.push(p);
                    }
                    uses.insert(b);
                    Backup::Working {
                        view,
                        uses,
                        written,
                        todo,
                    }
                } else {
                    let body = IndexBody {
                        supersedes: vec![],
                        packs: written.iter().map(|p| self.s.index_pack(p)).collect(),
                    };
                    let iid = self.s.fresh(3);
                    self.s.index.insert(iid, body);
                    Backup::Indexed { uses }
                }
            }
            Backup::Indexed { uses } => {
                let sid = self.s.fresh(4);
                self.s.snapshots.insert(sid, uses);
                self.s.locks.remove(&i);
                Backup::Idle
            }
        };
    }

    fn step_prune(&mut self) {
        let state = std::mem::replace(&mut self.prune, Prune::Idle);
        self.prune = match state {
            Prune::Idle => {
                let h = self.holder(PRUNE);
                self.s.locks.insert(PRUNE, h);
                Prune::Locked
            }
            Prune::Locked => Prune::Read {
                marks: self.s.marks.iter().map(|(k, v)| (*k, v.clone())).collect(),
                live: self.live(),
            },
            Prune::Read { marks, live } => {
                let mut index: Vec<(Id, IndexBody)> =
                    self.s.index.iter().map(|(k, v)| (*k, v.clone())).collect();
                if self.variant == Variant::PruneIgnoresBases {
                    for (_, body) in &mut index {
                        for p in &mut body.packs {
                            for b in &mut p.blobs {
                                b.base = None;
                            }
                        }
                    }
                }
                let stored: HashSet<Id> = self.s.packs.keys().copied().collect();
                let used = self
                    .s
                    .snapshots
                    .values()
                    .flatten()
                    .map(|b| (BlobKind::Data, id(1, *b)))
                    .collect();
                let rules = PruneRules {
                    max_unused: 1.0,
                    max_repack_bytes: None,
                };
                let Ok(base) = decide(
                    &vault::ops::prune::PlanInput {
                        index: &index,
                        stored: &stored,
                        used: &used,
                        max_delta_links: MAX_LINKS,
                    },
                    &rules,
                ) else {
                    // Refuses on damage; the invariant check reports it.
                    self.s.locks.remove(&PRUNE);
                    return;
                };
                let phases = plan_phases(
                    &base,
                    &PhaseInput {
                        index: &index,
                        marks: &marks,
                        live: &live,
                        unindexed_sizes: &HashMap::new(),
                        now: self.s.time(),
                        grace_secs: self.grace,
                    },
                );
                Prune::Planned(Box::new(TwoPhasePlan { base, phases }), 0)
            }
            Prune::Planned(plan, stage) => {
                self.prune_stage(&plan, stage);
                if stage == 4 {
                    self.s.locks.remove(&PRUNE);
                    Prune::Idle
                } else {
                    Prune::Planned(plan, stage + 1)
                }
            }
        };
    }

    fn live(&self) -> HashSet<Holder> {
        if self.variant == Variant::PruneIgnoresHolders {
            return HashSet::new();
        }
        self.s
            .locks
            .iter()
            .filter(|(p, _)| **p != PRUNE)
            .map(|(_, h)| h.clone())
            .collect()
    }

    /// One step of `execute_phases` (no repacking: `max_unused` is 100%).
    fn prune_stage(&mut self, plan: &TwoPhasePlan, stage: usize) {
        let ph = &plan.phases;
        match stage {
            0 => {
                if !ph.mark.is_empty() {
                    let m = Marks::new(self.s.time(), vec![], None, ph.mark.clone());
                    let mid = self.s.fresh(5);
                    self.s.marks.insert(mid, m);
                }
            }
            1 => {
                let holders: Vec<Holder> = self.live().into_iter().collect();
                let unsealed: Vec<(Id, Marks)> = self
                    .s
                    .marks
                    .iter()
                    .filter(|(_, m)| !m.sealed())
                    .map(|(k, v)| (*k, v.clone()))
                    .collect();
                for (old, m) in unsealed {
                    let sealed = Marks::new(m.time, vec![old], Some(holders.clone()), m.packs);
                    let mid = self.s.fresh(5);
                    self.s.marks.insert(mid, sealed);
                    self.s.marks.remove(&old);
                }
            }
            2 => {
                if ph.rewrite_index {
                    // What the packs really hold (the broken variant planned
                    // on an index without bases, but writes the packs' own).
                    let keep: Vec<IndexPack> = ph
                        .keep
                        .iter()
                        .map(|p| {
                            if self.s.packs.contains_key(&p.id) {
                                self.s.index_pack(&p.id)
                            } else {
                                p.clone()
                            }
                        })
                        .collect();
                    for body in index_bodies(&keep, &ph.supersede, 4) {
                        let iid = self.s.fresh(3);
                        self.s.index.insert(iid, body);
                    }
                    for old in &ph.supersede {
                        self.s.index.remove(old);
                    }
                }
            }
            3 => {
                for (p, _) in &ph.delete {
                    self.s.deleted += usize::from(self.s.packs.remove(p).is_some());
                }
            }
            _ => {
                for r in &ph.replace {
                    if let Some(new) = &r.new {
                        let mid = self.s.fresh(5);
                        self.s.marks.insert(mid, new.clone());
                    }
                    self.s.marks.remove(&r.old);
                }
            }
        }
    }

    /// Kill process `i` (a backup, or prune when `i == PRUNE`): its lock is
    /// left behind but stale (its holder is gone), so others ignore it.
    fn crash(&mut self, i: usize) {
        self.s.locks.remove(&i);
        if i == PRUNE {
            self.prune = Prune::Idle;
        } else {
            self.backups[i] = Backup::Idle;
        }
    }
}

/// Run one seeded interleaving; the first violation, if any.
/// Packs deleted and the longest chain written, or the first loss.
fn run(seed: u64, variant: Variant, steps: usize) -> Result<(usize, usize), String> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut m = Model {
        s: Store::default(),
        backups: (0..3).map(|_| Backup::Idle).collect(),
        prune: Prune::Idle,
        variant,
        grace: rng.gen_range(0..3),
    };
    for _ in 0..steps {
        m.s.now += 1;
        match rng.gen_range(0..100) {
            0..=54 => {
                let i = rng.gen_range(0..m.backups.len());
                m.step_backup(i, &mut rng);
            }
            55..=89 => m.step_prune(),
            90..=95 => {
                // forget: drop the oldest snapshot.
                if let Some(k) = m.s.snapshots.keys().next().copied() {
                    m.s.snapshots.remove(&k);
                }
            }
            _ => {
                let i = rng.gen_range(0..=m.backups.len());
                m.crash(if i == m.backups.len() { PRUNE } else { i });
            }
        }
        if let Some(lost) = m.s.lost() {
            return Err(format!("seed {seed}: {lost}"));
        }
    }
    Ok((m.s.deleted, m.s.longest_chain))
}

const RUNS: u64 = 3000;
const STEPS: usize = 120;

#[test]
fn no_snapshot_ever_references_a_deleted_blob() {
    let (mut deleted, mut longest) = (0, 0);
    for seed in 0..RUNS {
        let (d, l) = run(seed, Variant::Correct, STEPS).unwrap_or_else(|e| panic!("{e}"));
        deleted += d;
        longest = longest.max(l);
    }
    assert!(
        deleted > RUNS as usize,
        "only {deleted} packs deleted: the exploration rarely reaches deletion"
    );
    assert!(
        longest >= 3,
        "chains of at most {longest} links: the model barely chains"
    );
}

#[test]
fn the_model_sees_loss_when_backups_ignore_marks() {
    assert!(
        (0..RUNS).any(|seed| run(seed, Variant::BackupsIgnoreMarks, STEPS).is_err()),
        "no interleaving lost a blob: the model cannot tell a broken protocol"
    );
}

#[test]
fn the_model_sees_loss_when_prune_ignores_running_backups() {
    assert!(
        (0..RUNS).any(|seed| run(seed, Variant::PruneIgnoresHolders, STEPS).is_err()),
        "no interleaving lost a blob: the model cannot tell a broken protocol"
    );
}

#[test]
fn the_model_sees_loss_when_prune_ignores_bases() {
    assert!(
        (0..RUNS).any(|seed| run(seed, Variant::PruneIgnoresBases, STEPS).is_err()),
        "no interleaving lost a base: the model cannot tell a broken planner"
    );
}
