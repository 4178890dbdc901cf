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

    #[test]
    fn directory_list_holds_relative_paths_only() {
        assert!(valid_directory("pg_wal"));
        assert!(valid_directory("pg_logical/snapshots"));
        for bad in ["", "/etc", "a/../b", "a//b", ".", "a/"] {
            assert!(!valid_directory(bad), "{bad}");
        }
    }
}
