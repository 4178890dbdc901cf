//! Prune planning as a pure function: which packs are deleted, repacked
//! and kept, and what the new index says. No repository needed.

use std::collections::{HashMap, HashSet};

use proptest::prelude::*;
use vault::format::index::{IndexBlob, IndexBody, IndexPack};
use vault::format::{BlobKind, Id};
use vault::ops::prune::{decide, new_index_bodies, PlanInput, PrunePlan, PruneRules};
use vault::ErrorKind;

fn id(n: u32) -> Id {
    let mut b = [0u8; 32];
    b[..4].copy_from_slice(&n.to_le_bytes());
    Id::from_bytes(b)
}

/// A pack `p` holding data blobs `blobs` of 100 bytes each, plus 50 bytes
/// of header.
fn pack(p: u32, blobs: &[u32]) -> IndexPack {
    IndexPack {
        id: id(1_000_000 + p),
        size: blobs.len() as u64 * 100 + 50,
        blobs: blobs
            .iter()
            .enumerate()
            .map(|(i, b)| IndexBlob {
                kind: BlobKind::Data,
                id: id(*b),
                offset: i as u32 * 100,
                stored_len: 100,
                raw_len: 90,
                base: None,
            })
            .collect(),
    }
}

fn pid(p: u32) -> Id {
    id(1_000_000 + p)
}

struct Repo {
    index: Vec<(Id, IndexBody)>,
    stored: HashSet<Id>,
    used: HashSet<(BlobKind, Id)>,
}

impl Repo {
    fn new(packs: Vec<IndexPack>, used: &[u32]) -> Self {
        let stored = packs.iter().map(|p| p.id).collect();
        Repo {
            index: vec![(
                id(7),
                IndexBody {
                    supersedes: vec![],
                    packs,
                },
            )],
            stored,
            used: used.iter().map(|b| (BlobKind::Data, id(*b))).collect(),
        }
    }

    fn plan(&self, rules: PruneRules) -> vault::Result<PrunePlan> {
        decide(
            &PlanInput {
                index: &self.index,
                stored: &self.stored,
                used: &self.used,
                max_delta_links: 1,
            },
            &rules,
        )
    }
}

fn max_unused(share: f64) -> PruneRules {
    PruneRules {
        max_unused: share,
        max_repack_bytes: None,
    }
}

#[test]
fn unused_packs_are_deleted_full_ones_kept_and_wasteful_ones_repacked() {
    let repo = Repo::new(
        vec![
            pack(1, &[1, 2, 3]),
            pack(2, &[4, 5, 6, 7]),
            pack(3, &[8, 9]),
        ],
        &[1, 2, 3, 4],
    );
    let plan = repo.plan(max_unused(0.05)).unwrap();
    assert_eq!(plan.delete, vec![(pid(3), 250)]);
    assert_eq!(plan.repack.len(), 1);
    assert_eq!(plan.repack[0].pack, pid(2));
    assert_eq!(
        plan.repack[0].keep.iter().map(|b| b.id).collect::<Vec<_>>(),
        vec![id(4)]
    );
    assert_eq!(
        plan.keep.iter().map(|p| p.id).collect::<Vec<_>>(),
        vec![pid(1)]
    );
    assert!(plan.rewrite_index);
    assert_eq!(plan.supersede, vec![id(7)]);
    assert_eq!(plan.freed_bytes(), 250 + 450 - 100);

    // Tolerating that much unused space keeps the pack instead.
    let lax = repo.plan(max_unused(0.9)).unwrap();
    assert!(lax.repack.is_empty());
    assert_eq!(lax.keep.len(), 2);
    assert_eq!(lax.unused_kept_bytes, 350);
}

#[test]
fn max_repack_size_caps_the_work() {
    let repo = Repo::new(
        vec![
            pack(1, &[1, 2, 3, 4]),
            pack(2, &[5, 6, 7, 8]),
            pack(3, &[9, 10]),
        ],
        &[1, 5, 9],
    );
    let capped = repo
        .plan(PruneRules {
            max_unused: 0.0,
            max_repack_bytes: Some(500),
        })
        .unwrap();
    assert_eq!(capped.repack.len(), 1, "{capped:?}");
    assert!(capped.repack_bytes() <= 500);
    let all = repo.plan(max_unused(0.0)).unwrap();
    assert_eq!(all.repack.len(), 3);
}

#[test]
fn of_two_copies_the_one_in_the_fuller_pack_stays() {
    // Pack 2 is what an interrupted repack of pack 1 wrote: blob 1 again.
    let repo = Repo::new(vec![pack(1, &[1, 2, 3]), pack(2, &[1])], &[1]);
    let plan = repo.plan(max_unused(0.0)).unwrap();
    assert_eq!(plan.delete, vec![(pid(1), 350)], "{plan:?}");
    assert_eq!(
        plan.keep.iter().map(|p| p.id).collect::<Vec<_>>(),
        vec![pid(2)]
    );
}

#[test]
fn unindexed_and_vanished_packs() {
    let mut repo = Repo::new(vec![pack(1, &[1]), pack(2, &[2])], &[1]);
    repo.stored.remove(&pid(2)); // indexed, gone, unused: dropped
    repo.stored.insert(pid(9)); // stored, in no index: deleted
    let plan = repo.plan(max_unused(0.05)).unwrap();
    assert_eq!(plan.vanished, vec![pid(2)]);
    assert_eq!(plan.unindexed, vec![pid(9)]);
    assert!(plan.rewrite_index);
    assert_eq!(
        plan.keep.iter().map(|p| p.id).collect::<Vec<_>>(),
        vec![pid(1)]
    );
}

#[test]
fn a_used_blob_without_a_stored_copy_stops_everything() {
    let mut repo = Repo::new(vec![pack(1, &[1]), pack(2, &[2, 3])], &[1, 2]);
    repo.stored.remove(&pid(2));
    let err = repo.plan(max_unused(0.05)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt);
    let repo = Repo::new(vec![pack(1, &[1])], &[1, 42]);
    assert_eq!(
        repo.plan(max_unused(0.05)).unwrap_err().kind(),
        ErrorKind::Corrupt
    );
}

#[test]
fn nothing_to_do_leaves_the_index_alone() {
    let repo = Repo::new(vec![pack(1, &[1, 2])], &[1, 2]);
    let plan = repo.plan(max_unused(0.05)).unwrap();
    assert!(plan.is_empty(), "{plan:?}");
}

#[test]
fn the_new_index_is_split_and_only_the_last_part_supersedes() {
    let repo = Repo::new(
        (1..=5).map(|p| pack(p, &[p * 10, p * 10 + 1])).collect(),
        &[10, 20, 30, 40, 50],
    );
    let mut plan = repo.plan(max_unused(1.0)).unwrap();
    plan.supersede = vec![id(7), id(8)];
    let bodies = new_index_bodies(&plan, 4);
    assert_eq!(bodies.len(), 3);
    assert!(bodies[..2].iter().all(|b| b.supersedes.is_empty()));
    assert_eq!(bodies[2].supersedes, vec![id(7), id(8)]);
    let listed: Vec<Id> = bodies
        .iter()
        .flat_map(|b| b.packs.iter().map(|p| p.id))
        .collect();
    assert_eq!(listed, plan.keep.iter().map(|p| p.id).collect::<Vec<_>>());
}

fn arb_repo() -> impl Strategy<Value = (Vec<IndexPack>, Vec<u32>, Vec<bool>)> {
    (
        prop::collection::vec(prop::collection::vec(0u32..30, 1..6), 0..10),
        prop::collection::vec(0u32..30, 0..20),
        prop::collection::vec(any::<bool>(), 10),
    )
        .prop_map(|(packs, used, split)| {
            let packs = packs
                .into_iter()
                .enumerate()
                .map(|(i, mut blobs)| {
                    blobs.sort();
                    blobs.dedup();
                    pack(i as u32, &blobs)
                })
                .collect();
            (packs, used, split)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// Whatever the plan, every used blob keeps exactly one place to live:
    /// a kept pack or a repack, never only in deleted packs.
    #[test]
    fn every_used_blob_survives_the_plan((packs, used, split) in arb_repo(), share in 0.0f64..1.0) {
        let available: HashSet<u32> = packs.iter().flat_map(|p| p.blobs.iter().map(|b| u32::from_le_bytes(b.id.as_bytes()[..4].try_into().unwrap()))).collect();
        let used: Vec<u32> = used.into_iter().filter(|b| available.contains(b)).collect();
        // Spread the packs over two index objects, as several runs would.
        let mut repo = Repo::new(vec![], &used);
        let (a, b): (Vec<_>, Vec<_>) = packs.iter().cloned().enumerate().partition(|(i, _)| split[*i]);
        repo.index = vec![
            (id(7), IndexBody { supersedes: vec![], packs: a.into_iter().map(|(_, p)| p).collect() }),
            (id(8), IndexBody { supersedes: vec![], packs: b.into_iter().map(|(_, p)| p).collect() }),
        ];
        repo.stored = packs.iter().map(|p| p.id).collect();
        let plan = repo.plan(max_unused(share)).unwrap();
        let mut homes: HashMap<(BlobKind, Id), usize> = HashMap::new();
        for p in &plan.keep {
            for b in &p.blobs {
                *homes.entry((b.kind, b.id)).or_default() += 1;
            }
        }
        for r in &plan.repack {
            for b in &r.keep {
                *homes.entry((b.kind, b.id)).or_default() += 1;
            }
        }
        for blob in &repo.used {
            prop_assert!(homes.get(blob).copied().unwrap_or(0) >= 1, "used blob lost");
        }
        let doomed: HashSet<Id> = plan.delete.iter().map(|(id, _)| *id).chain(plan.repack.iter().map(|r| r.pack)).collect();
        for p in &plan.keep {
            prop_assert!(!doomed.contains(&p.id));
        }
        // Without a repack cap, what stays unused is within the limit.
        let total = plan.used_bytes + plan.unused_kept_bytes;
        prop_assert!(plan.unused_kept_bytes as f64 <= share * total as f64 + 1e-6);
    }
}

/// `pack`, with blob `b` of it stored as a delta against `base`.
fn with_base(mut p: IndexPack, b: u32, base: u32) -> IndexPack {
    for blob in p.blobs.iter_mut().filter(|x| x.id == id(b)) {
        blob.base = Some(id(base));
    }
    p
}

fn plan_chains(packs: Vec<IndexPack>, used: &[u32], max_links: usize) -> vault::Result<PrunePlan> {
    let repo = Repo::new(packs, used);
    decide(
        &PlanInput {
            index: &repo.index,
            stored: &repo.stored,
            used: &repo.used,
            max_delta_links: max_links,
        },
        &max_unused(0.0),
    )
}

fn kept_copies(plan: &PrunePlan) -> Vec<(Id, Option<Id>)> {
    let mut out: Vec<(Id, Option<Id>)> = plan
        .keep
        .iter()
        .flat_map(|p| &p.blobs)
        .chain(plan.repack.iter().flat_map(|r| &r.keep))
        .map(|b| (b.id, b.base))
        .collect();
    out.sort();
    out
}

#[test]
fn every_link_of_a_used_delta_chain_stays() {
    // 4 -> 3 -> 2 -> 1 (whole); only 4 is used, 9 is garbage.
    let packs = vec![
        pack(1, &[1]),
        with_base(pack(2, &[2]), 2, 1),
        with_base(pack(3, &[3]), 3, 2),
        with_base(pack(4, &[4]), 4, 3),
        pack(5, &[9]),
    ];
    let plan = plan_chains(packs.clone(), &[4], 8).unwrap();
    assert_eq!(
        kept_copies(&plan),
        vec![
            (id(1), None),
            (id(2), Some(id(1))),
            (id(3), Some(id(2))),
            (id(4), Some(id(3)))
        ]
    );
    assert_eq!(plan.delete, vec![(pid(5), 150)]);
    // Three links where the format allows one: no whole copy of 4, 3 or 2
    // to keep instead, so nothing is deleted.
    let refused = plan_chains(packs, &[4], 1).unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::Corrupt);
    assert!(refused.to_string().contains("refusing"), "{refused}");
}

#[test]
fn copies_that_could_loop_keep_a_whole_copy() {
    // Blob 1 is stored whole in a pack of mostly garbage, and again as a
    // delta against 2, which is a delta against 1: keeping the fuller
    // pack's copy alone would leave 1 and 2 each other's base.
    let packs = vec![
        pack(1, &[1, 50, 51, 52]),
        with_base(pack(2, &[2]), 2, 1),
        with_base(pack(3, &[1]), 1, 2),
    ];
    let plan = plan_chains(packs, &[2], 8).unwrap();
    let kept = kept_copies(&plan);
    assert!(kept.contains(&(id(1), None)), "{kept:?}");
    assert!(kept.contains(&(id(2), Some(id(1)))), "{kept:?}");
}

#[test]
fn a_chain_longer_than_allowed_keeps_a_whole_copy_of_a_link() {
    // 3 -> 2 -> 1 in a format that allows one link, 2 also stored whole.
    let packs = vec![
        pack(1, &[1]),
        with_base(pack(2, &[2]), 2, 1),
        with_base(pack(3, &[3]), 3, 2),
        pack(4, &[2, 60, 61]),
    ];
    let plan = plan_chains(packs, &[3], 1).unwrap();
    let kept = kept_copies(&plan);
    assert!(kept.contains(&(id(2), None)), "{kept:?}");
    assert!(!kept.contains(&(id(2), Some(id(1)))), "{kept:?}");
}
