//! Run records in the repository (`runs/`): store, list, expire.

use rayon::prelude::*;

use crate::error::{ErrorKind, Result};
use crate::format::run::RunRecord;
use crate::format::Id;
use crate::repo::{ObjectKind, Repository};

pub fn save(repo: &Repository, record: &RunRecord) -> Result<Id> {
    repo.write_object(ObjectKind::Run, &record.encode())
}

/// Run records with their object ids, oldest first.
pub type Records = Vec<(Id, RunRecord)>;

/// Every readable run record, oldest first, and a message for each one
/// that could not be read: a damaged record must not hide the others.
pub fn load(repo: &Repository) -> Result<(Records, Vec<String>)> {
    let ids = repo.list_objects(ObjectKind::Run)?;
    let read: Vec<(Id, Result<RunRecord>)> = ids
        .par_iter()
        .map(|id| {
            let r = repo
                .read_object(ObjectKind::Run, id)
                .and_then(|body| RunRecord::decode(&body));
            (*id, r)
        })
        .collect();
    let mut out = Vec::new();
    let mut unreadable = Vec::new();
    for (id, r) in read {
        match r {
            Ok(rec) => out.push((id, rec)),
            // Expired by a concurrent run between listing and reading.
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => unreadable.push(format!("run record {}: {e}", id.short())),
        }
    }
    out.sort_by(|a, b| a.1.time.cmp(&b.1.time).then(a.0.cmp(&b.0)));
    Ok((out, unreadable))
}

pub fn delete(repo: &Repository, ids: &[Id]) -> Result<()> {
    for id in ids {
        repo.delete_object(ObjectKind::Run, id)?;
    }
    Ok(())
}
