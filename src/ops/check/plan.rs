//! Which packs a check reads in full, and how much of the repository recent
//! checks have covered. Pure: no I/O, the clock and randomness passed in.

use std::collections::HashMap;
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::format::{Id, Timestamp};
use crate::units;

/// How much of the data `--read-data-subset` reads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Subset {
    /// Part `part` of `of` equal parts (`1/7`); with rotation, the size of
    /// one part.
    Fraction { part: u64, of: u64 },
    /// A percentage of the packs (`5%`).
    Percent(f64),
    /// About this many bytes of packs (`500M`), at least one pack.
    Bytes(u64),
}

impl FromStr for Subset {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            Error::invalid(format!(
                "'{s}' is not a subset: use N/M (1/7), a percentage (5%) or a size (500M, 2G)"
            ))
        };
        let s = s.trim();
        if let Some((part, of)) = s.split_once('/') {
            let part: u64 = part.trim().parse().map_err(|_| bad())?;
            let of: u64 = of.trim().parse().map_err(|_| bad())?;
            if part == 0 || of == 0 || part > of {
                return Err(bad());
            }
            return Ok(Subset::Fraction { part, of });
        }
        if s.ends_with('%') {
            let p = units::parse_percent(s).map_err(|_| bad())?;
            if p == 0.0 {
                return Err(bad());
            }
            return Ok(Subset::Percent(p));
        }
        let bytes = units::parse_size(s).map_err(|_| bad())?;
        if bytes == 0 {
            return Err(bad());
        }
        Ok(Subset::Bytes(bytes))
    }
}

/// A pack as the planner sees it.
#[derive(Debug, Clone, Copy)]
pub struct PackInfo {
    pub id: Id,
    pub size: u64,
    /// When a check last read it in full and found it intact.
    pub last_verified: Option<Timestamp>,
}

/// The packs to read in full. With `rotate`, never-verified packs come
/// first, then the least recently verified; otherwise a fraction picks a
/// fixed slice of the packs sorted by id (so `1/7` ... `7/7` together cover
/// everything), and a percentage or size picks packs in an order drawn
/// from `seed`.
pub fn packs_to_read(packs: &[PackInfo], subset: Subset, rotate: bool, seed: u64) -> Vec<Id> {
    let mut order: Vec<&PackInfo> = packs.iter().collect();
    order.sort_by_key(|p| p.id);
    if let (Subset::Fraction { part, of }, false) = (subset, rotate) {
        return order
            .iter()
            .enumerate()
            .filter(|(i, _)| *i as u64 % of == part - 1)
            .map(|(_, p)| p.id)
            .collect();
    }
    if rotate {
        // None sorts before Some: never verified first.
        order.sort_by_key(|p| (p.last_verified, p.id));
    } else {
        order.sort_by_cached_key(|p| shuffle_key(seed, &p.id));
    }
    let n = order.len() as u64;
    let count = match subset {
        Subset::Fraction { of, .. } => n.div_ceil(of),
        Subset::Percent(p) => ((n as f64) * p / 100.0).ceil() as u64,
        Subset::Bytes(limit) => {
            let mut total = 0u64;
            let mut count = 0u64;
            for p in &order {
                if count > 0 && total >= limit {
                    break;
                }
                total += p.size;
                count += 1;
            }
            count
        }
    };
    order
        .into_iter()
        .take(count.min(n) as usize)
        .map(|p| p.id)
        .collect()
}

fn shuffle_key(seed: u64, id: &Id) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(&seed.to_le_bytes());
    h.update(id.as_bytes());
    *h.finalize().as_bytes()
}

/// How much of the repository checks have read lately.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Coverage {
    pub packs: u64,
    pub bytes: u64,
    pub recent_packs: u64,
    pub recent_bytes: u64,
    pub never_verified_packs: u64,
    /// The oldest verification among packs verified at all.
    pub oldest: Option<Timestamp>,
    pub newest: Option<Timestamp>,
}

/// Coverage of `packs` by verifications in the `days` before `now`.
pub fn coverage(
    packs: &[(Id, u64)],
    last: &HashMap<Id, Timestamp>,
    now: Timestamp,
    days: u64,
) -> Coverage {
    let since = now
        .secs
        .saturating_sub((days as i64).saturating_mul(86_400));
    let mut c = Coverage::default();
    for (id, size) in packs {
        c.packs += 1;
        c.bytes += size;
        match last.get(id) {
            None => c.never_verified_packs += 1,
            Some(t) => {
                if t.secs >= since {
                    c.recent_packs += 1;
                    c.recent_bytes += size;
                }
                c.oldest = Some(c.oldest.map_or(*t, |o| o.min(*t)));
                c.newest = Some(c.newest.map_or(*t, |o| o.max(*t)));
            }
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packs(n: u8) -> Vec<PackInfo> {
        (0..n)
            .map(|i| PackInfo {
                id: Id::from_bytes([i; 32]),
                size: 100,
                last_verified: None,
            })
            .collect()
    }

    #[test]
    fn subsets_parse() {
        assert_eq!(
            "1/7".parse::<Subset>().unwrap(),
            Subset::Fraction { part: 1, of: 7 }
        );
        assert_eq!("5%".parse::<Subset>().unwrap(), Subset::Percent(5.0));
        assert_eq!("500M".parse::<Subset>().unwrap(), Subset::Bytes(500 << 20));
        assert_eq!("2GiB".parse::<Subset>().unwrap(), Subset::Bytes(2 << 30));
        assert_eq!("4096".parse::<Subset>().unwrap(), Subset::Bytes(4096));
        for bad in ["0/7", "8/7", "1/0", "0%", "101%", "5X", "", "M", "0"] {
            assert!(bad.parse::<Subset>().is_err(), "{bad}");
        }
    }

    #[test]
    fn fractions_partition_the_packs() {
        let all = packs(20);
        let mut seen = Vec::new();
        for part in 1..=7 {
            let chosen = packs_to_read(&all, Subset::Fraction { part, of: 7 }, false, 1);
            assert!(chosen.len() == 2 || chosen.len() == 3, "{}", chosen.len());
            seen.extend(chosen);
        }
        seen.sort();
        let mut want: Vec<Id> = all.iter().map(|p| p.id).collect();
        want.sort();
        assert_eq!(seen, want);
    }

    #[test]
    fn rotation_covers_every_pack_in_n_runs() {
        let mut all = packs(23);
        let mut seen = std::collections::HashSet::new();
        for run in 0..5 {
            let chosen = packs_to_read(&all, Subset::Fraction { part: 1, of: 5 }, true, 0);
            assert_eq!(chosen.len(), 5);
            for p in all.iter_mut().filter(|p| chosen.contains(&p.id)) {
                p.last_verified = Some(Timestamp {
                    secs: 1000 + run,
                    nanos: 0,
                });
            }
            seen.extend(chosen);
        }
        assert_eq!(seen.len(), 23);
        // The sixth run starts again with the oldest verifications.
        let next = packs_to_read(&all, Subset::Fraction { part: 1, of: 5 }, true, 0);
        let time = |id: &Id| all.iter().find(|p| p.id == *id).unwrap().last_verified;
        let newest_chosen = next.iter().map(time).max().unwrap();
        let oldest_left = all
            .iter()
            .filter(|p| !next.contains(&p.id))
            .map(|p| p.last_verified)
            .min()
            .unwrap();
        assert!(newest_chosen <= oldest_left);
    }

    #[test]
    fn sizes_and_percentages_round_up() {
        let all = packs(10);
        assert_eq!(packs_to_read(&all, Subset::Bytes(250), false, 3).len(), 3);
        assert_eq!(packs_to_read(&all, Subset::Bytes(1), false, 3).len(), 1);
        assert_eq!(packs_to_read(&all, Subset::Percent(15.0), true, 3).len(), 2);
        assert_eq!(
            packs_to_read(&all, Subset::Percent(100.0), false, 3).len(),
            10
        );
        assert!(packs_to_read(&[], Subset::Bytes(1), false, 3).is_empty());
    }

    #[test]
    fn coverage_counts_recent_verifications() {
        let day = 86_400;
        let now = Timestamp {
            secs: 100 * day,
            nanos: 0,
        };
        let ids: Vec<(Id, u64)> = (0..4u8).map(|i| (Id::from_bytes([i; 32]), 10)).collect();
        let mut last = HashMap::new();
        last.insert(
            ids[0].0,
            Timestamp {
                secs: 99 * day,
                nanos: 0,
            },
        );
        last.insert(
            ids[1].0,
            Timestamp {
                secs: 80 * day,
                nanos: 0,
            },
        );
        let c = coverage(&ids, &last, now, 7);
        assert_eq!((c.packs, c.bytes), (4, 40));
        assert_eq!((c.recent_packs, c.recent_bytes), (1, 10));
        assert_eq!(c.never_verified_packs, 2);
        assert_eq!(c.oldest.unwrap().secs, 80 * day);
    }
}
