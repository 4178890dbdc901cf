//! Reading deletion marks (`marks/`), for prune, check and for backups,
//! which must not deduplicate against a marked pack.

use std::collections::HashSet;

use super::{ObjectKind, Repository};
use crate::error::{ErrorKind, Result};
use crate::format::marks::Marks;
use crate::format::Id;

impl Repository {
    /// Every mark object prune could act on. One that is corrupt or
    /// tampered is skipped: prune reads marks with the same keys and the
    /// same rules, so it never deletes a pack on the word of such a mark.
    /// One of an unknown version stops the reader instead, since a newer
    /// prune might act on it.
    pub fn read_marks(&self) -> Result<Vec<(Id, Marks)>> {
        let mut out = Vec::new();
        for id in self.list_objects(ObjectKind::Marks)? {
            match self
                .read_object(ObjectKind::Marks, &id)
                .and_then(|b| Marks::decode(&b))
            {
                Ok(m) => out.push((id, m)),
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::NotFound | ErrorKind::Corrupt | ErrorKind::Tampered
                    ) => {}
                Err(e) => return Err(e.at(format!("marks {}", id.short()))),
            }
        }
        Ok(out)
    }

    /// Re-read which packs are marked; `has_blob` then treats their blobs
    /// as absent, so a backup stores such a blob again instead of relying
    /// on a pack that a later prune may delete.
    pub(crate) fn load_marks(&self) -> Result<()> {
        let marked: HashSet<Id> = self
            .read_marks()?
            .into_iter()
            .flat_map(|(_, m)| m.packs)
            .collect();
        *self.marked.lock().unwrap_or_else(|p| p.into_inner()) = marked;
        Ok(())
    }

    pub(crate) fn is_marked(&self, pack: &Id) -> bool {
        self.marked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(pack)
    }
}
