//! Deletion marks (`marks/<id>`): `"VLTM" | sealed box (Marks)`, format
//! version 3. Prune deletes in two phases: one run marks the packs no
//! snapshot uses, a later run deletes those still unused once the grace
//! period has passed and every writer that might have deduplicated against
//! them before they were marked has finished. Backups honour marks: they
//! never deduplicate against a blob whose indexed copy is in a marked pack.
//!
//! A mark is stored twice: first without holders (so that every backup that
//! starts from then on sees it), then, once the locks have been listed,
//! sealed with the holders of the live locks, superseding the first. Only a
//! sealed mark's packs may be deleted.

use super::codec::{Reader, Writer};
use super::id::{Id, ID_LEN};
use super::Timestamp;
use crate::error::{Error, Result};

pub const MARKS_VERSION: u8 = 1;
/// Empty host, pid and time: the least a holder takes.
const MIN_HOLDER_LEN: usize = 1 + 4 + 12;

/// Who held a live lock when a mark was sealed. A lock keeps these fields
/// when it is refreshed, so they name the holder, not one lock object.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Holder {
    pub host: String,
    pub pid: u32,
    pub created: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Marks {
    /// When the packs were marked, by the marking prune's clock.
    pub time: Timestamp,
    /// Mark objects this one replaces (its unsealed self, or an older mark
    /// of which some packs were deleted or taken back).
    pub supersedes: Vec<Id>,
    /// `None` until the locks were listed after the mark became visible.
    pub holders: Option<Vec<Holder>>,
    /// The marked packs, sorted, each once.
    pub packs: Vec<Id>,
}

impl Marks {
    /// Packs and holders are sorted and deduplicated here, so every mark
    /// has exactly one encoding.
    pub fn new(
        time: Timestamp,
        supersedes: Vec<Id>,
        holders: Option<Vec<Holder>>,
        mut packs: Vec<Id>,
    ) -> Self {
        packs.sort_unstable();
        packs.dedup();
        let holders = holders.map(|mut h| {
            h.sort();
            h.dedup();
            h
        });
        Marks {
            time,
            supersedes,
            holders,
            packs,
        }
    }

    pub fn sealed(&self) -> bool {
        self.holders.is_some()
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(MARKS_VERSION);
        self.time.write(&mut w);
        w.list(&self.supersedes, |w, id| w.id(id));
        match &self.holders {
            None => w.u8(0),
            Some(holders) => {
                w.u8(1);
                w.list(holders, |w, h| {
                    w.str(&h.host);
                    w.u32(h.pid);
                    h.created.write(w);
                });
            }
        }
        w.list(&self.packs, |w, id| w.id(id));
        w.into_bytes()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes, "marks");
        r.expect_version(MARKS_VERSION)?;
        let time = Timestamp::read(&mut r)?;
        let supersedes = r.list(ID_LEN, |r| r.id())?;
        let holders = match r.u8()? {
            0 => None,
            1 => Some(r.list(MIN_HOLDER_LEN, |r| {
                Ok(Holder {
                    host: r.string()?,
                    pid: r.u32()?,
                    created: Timestamp::read(r)?,
                })
            })?),
            _ => return Err(r.error("sealed flag is neither 0 nor 1")),
        };
        let packs = r.list(ID_LEN, |r| r.id())?;
        r.finish()?;
        if packs.windows(2).any(|w| w[0] >= w[1]) {
            return Err(Error::corrupt("marks: packs are not sorted or repeat"));
        }
        if let Some(h) = &holders {
            if h.windows(2).any(|w| w[0] >= w[1]) {
                return Err(Error::corrupt("marks: holders are not sorted or repeat"));
            }
        }
        Ok(Marks {
            time,
            supersedes,
            holders,
            packs,
        })
    }
}
