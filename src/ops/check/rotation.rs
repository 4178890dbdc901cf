//! The rotation record: which packs checks have read in full, and when,
//! kept as append-only verification records in `verified/`.

use std::collections::{HashMap, HashSet};

use crate::error::{Error, ErrorKind, Result};
use crate::format::verified::VerifiedRecord;
use crate::format::{Id, Timestamp};
use crate::repo::{ObjectKind, Repository};

/// Records kept before a run folds them into one: few enough that loading
/// them stays cheap, many enough that folding is rare.
const CONSOLIDATE_AT: usize = 16;

#[derive(Debug, Default)]
pub struct Verifications {
    /// Records read (these may be superseded by the next write).
    pub records: Vec<Id>,
    /// Latest verification of each pack.
    pub last: HashMap<Id, Timestamp>,
    /// Records that could not be read.
    pub unreadable: Vec<(Id, Error)>,
}

/// Read every record. A record deleted while we read (another check
/// consolidating) is skipped: its entries are in the record that replaced it.
pub fn load(repo: &Repository) -> Result<Verifications> {
    let (records, unreadable) = super::read_each(repo, ObjectKind::Verified, |id| {
        VerifiedRecord::decode(&repo.read_object(ObjectKind::Verified, id)?)
    })?;
    let mut out = Verifications {
        unreadable,
        ..Default::default()
    };
    for (id, record) in records {
        out.records.push(id);
        for (pack, time) in record.entries {
            let slot = out.last.entry(pack).or_insert(time);
            *slot = (*slot).max(time);
        }
    }
    Ok(out)
}

/// Record that `verified` packs were read intact at `now`. When records
/// have piled up, the new record holds every entry still about an existing
/// pack and replaces the records read; only those are deleted, so a record
/// another check writes meanwhile survives.
pub fn record(
    repo: &Repository,
    state: &Verifications,
    verified: &[Id],
    now: Timestamp,
    existing: &HashSet<Id>,
) -> Result<Id> {
    let mut entries: Vec<(Id, Timestamp)> = verified.iter().map(|id| (*id, now)).collect();
    let consolidate = state.records.len() + 1 >= CONSOLIDATE_AT;
    let supersedes = if consolidate {
        entries.extend(
            state
                .last
                .iter()
                .filter(|(id, _)| existing.contains(id))
                .map(|(id, t)| (*id, *t)),
        );
        state.records.clone()
    } else {
        vec![]
    };
    let record = VerifiedRecord::new(supersedes, entries);
    let id = repo.write_object(ObjectKind::Verified, &record.encode())?;
    for old in &record.supersedes {
        match repo.delete_object(ObjectKind::Verified, old) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e.at("remove a superseded verification record")),
        }
    }
    Ok(id)
}
