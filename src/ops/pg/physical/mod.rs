//! Physical PostgreSQL backups: a base backup streamed into a snapshot,
//! and a data directory written back from one, set to recover from the
//! WAL archive to a point in time.
//!
//! A physical snapshot's tree (format-spec/README.md, "Physical base
//! backups"):
//!
//! ```text
//! data/<path>    every regular file of the data directory, as the base
//!                backup streamed it (backup_label and backup_manifest too)
//! directories    every folder of the data directory, one relative path a
//!                line, so empty ones (pg_wal, pg_notify, ...) come back
//! tablespaces/<oid>/data/<path>, tablespaces/<oid>/directories
//!                the same for each tablespace (data/tablespace_map says
//!                where each one lived)
//! ```

pub mod drill;
pub mod restore;
pub mod snapshot;

use crate::error::{Error, Result};
use crate::format::pg_base::{BaseBackup, PG_PHYSICAL_SOURCE};
use crate::format::snapshot::Snapshot;
use crate::format::Id;

/// The folder of the snapshot holding the data directory's files.
pub const DATA: &str = "data";
/// The file of the snapshot listing the data directory's folders.
pub const DIRECTORIES: &str = "directories";

/// Where tablespace `oid`'s `data/` and `directories` are in the
/// snapshot's tree.
pub fn tablespace_prefix(oid: u32) -> String {
    format!("tablespaces/{oid}/")
}

/// The base backup a snapshot holds, or why it holds none.
pub fn base_backup_of(snapshot: &Snapshot) -> Result<BaseBackup> {
    if snapshot.source != PG_PHYSICAL_SOURCE {
        return Err(Error::invalid(format!(
            "this is a '{}' snapshot, not a physical PostgreSQL base backup (`snapshot pg --physical`)",
            snapshot.source
        )));
    }
    BaseBackup::from_meta(&snapshot.meta)?
        .ok_or_else(|| Error::corrupt("a physical snapshot without its pg.base record"))
}

/// The base backup a recovery to `lsn` starts from: of the snapshots
/// (oldest first), the one that became consistent last at or before `lsn`,
/// the newest of equals. A backup that ends after the target cannot stop
/// there; an older one can, by replaying further.
pub fn newest_base_before_lsn<'a>(
    snapshots: impl IntoIterator<Item = &'a (Id, Snapshot)>,
    lsn: u64,
) -> Option<&'a (Id, Snapshot)> {
    let mut best: Option<(&(Id, Snapshot), u64)> = None;
    for s in snapshots {
        let Ok(Some(base)) = BaseBackup::from_meta(&s.1.meta) else {
            continue;
        };
        if base.stop_lsn <= lsn && best.is_none_or(|(_, stop)| base.stop_lsn >= stop) {
            best = Some((s, base.stop_lsn));
        }
    }
    best.map(|(s, _)| s)
}

/// A folder path from the `directories` list, if it is one a data
/// directory can hold: relative, no `.`/`..`, no empty parts.
pub fn valid_directory(path: &str) -> bool {
    !path.is_empty()
        && path
            .split('/')
            .all(|c| crate::format::tree::valid_name(c.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backup(stop_lsn: u64, secs: i64) -> (Id, Snapshot) {
        let base = BaseBackup {
            system_identifier: 1,
            wal_segment_size: 16 << 20,
            start_timeline: 1,
            start_lsn: stop_lsn - 0x100,
            stop_timeline: 1,
            stop_lsn,
        };
        let s = Snapshot {
            time: crate::format::Timestamp { secs, nanos: 0 },
            host: "h".into(),
            user: "u".into(),
            tags: vec![],
            source: PG_PHYSICAL_SOURCE.into(),
            paths: vec![],
            root: Id::from_bytes([0; 32]),
            parent: None,
            summary: crate::format::snapshot::Summary::default(),
            program_version: String::new(),
            meta: vec![(crate::format::pg_base::PG_BASE_KEY.into(), base.encode())],
        };
        let mut id = [0u8; 32];
        id[..8].copy_from_slice(&stop_lsn.to_le_bytes());
        (Id::from_bytes(id), s)
    }

    #[test]
    fn a_target_lsn_starts_from_the_newest_backup_that_ends_before_it() {
        let snaps = vec![
            backup(0x200_0100, 1),
            backup(0x500_0100, 2),
            backup(0x900_0100, 3),
        ];
        let pick = |lsn| newest_base_before_lsn(&snaps, lsn).map(|s| s.1.time.secs);
        assert_eq!(pick(0x600_0000), Some(2), "between the second and third");
        assert_eq!(pick(0x500_0100), Some(2), "exactly where one ends");
        assert_eq!(pick(0xa00_0000), Some(3));
        assert_eq!(pick(0x100_0000), None, "before every backup");
        let mut no_base = backup(0x300_0000, 4);
        no_base.1.meta.clear();
        let with_stray = [snaps[0].clone(), no_base];
        assert_eq!(
            newest_base_before_lsn(&with_stray, 0x400_0000).map(|s| s.1.time.secs),
            Some(1)
        );
    }

    #[test]
    fn directory_list_holds_relative_paths_only() {
        assert!(valid_directory("pg_wal"));
        assert!(valid_directory("pg_logical/snapshots"));
        for bad in ["", "/etc", "a/../b", "a//b", ".", "a/"] {
            assert!(!valid_directory(bad), "{bad}");
        }
    }
}
