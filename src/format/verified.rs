//! Verification records (`verified/<id>`): `"VLTV" | sealed box (CheckState)`.
//! Each `check --read-data-subset --rotate` run appends one, naming the packs
//! it read in full and when; the next run reads them all and verifies the
//! least recently verified packs first. Records are only ever added, so two
//! checks on two machines cannot lose each other's work; a later run may
//! write one record that supersedes several and then delete those.

use super::codec::{Reader, Writer};
use super::id::{Id, ID_LEN};
use super::Timestamp;
use crate::error::{Error, Result};

pub const VERIFIED_VERSION: u8 = 1;
/// Pack id and time of one entry.
const ENTRY_LEN: usize = ID_LEN + 12;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VerifiedRecord {
    /// Records this one replaces: it holds every entry of theirs that still
    /// matters, and they may be deleted once it is stored.
    pub supersedes: Vec<Id>,
    /// When each pack was last read in full and found intact, sorted by
    /// pack id, one entry per pack.
    pub entries: Vec<(Id, Timestamp)>,
}

impl VerifiedRecord {
    /// Entries are sorted and deduplicated (keeping the latest time) here,
    /// so every record has exactly one encoding.
    pub fn new(supersedes: Vec<Id>, mut entries: Vec<(Id, Timestamp)>) -> Self {
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        entries.dedup_by_key(|e| e.0);
        VerifiedRecord {
            supersedes,
            entries,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(VERIFIED_VERSION);
        w.list(&self.supersedes, |w, id| w.id(id));
        w.list(&self.entries, |w, (id, time)| {
            w.id(id);
            time.write(w);
        });
        w.into_bytes()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes, "verification record");
        r.expect_version(VERIFIED_VERSION)?;
        let supersedes = r.list(ID_LEN, |r| r.id())?;
        let entries = r.list(ENTRY_LEN, |r| Ok((r.id()?, Timestamp::read(r)?)))?;
        r.finish()?;
        if entries.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err(Error::corrupt(
                "verification record: packs are not sorted or repeat",
            ));
        }
        Ok(VerifiedRecord {
            supersedes,
            entries,
        })
    }
}
