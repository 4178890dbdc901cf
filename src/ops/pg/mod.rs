//! PostgreSQL backups: a consistent parallel dump into a snapshot, restores
//! of whole databases or single tables, and restore drills.

pub mod dependents;
pub mod drill;
pub mod physical;
pub mod restore;
pub mod scratch;
pub mod snapshot;
pub mod table_at;

use crate::error::Result;
use crate::format::pg_facts::{self, DatabaseFacts, PG_FACTS_KEY};
use crate::format::pg_tables::{self, TableRows, PG_TABLES_KEY};
use crate::format::snapshot::Snapshot;

/// What `snapshot pg` records as the snapshot's source.
pub const SOURCE: &str = "postgres";

/// Refuse snapshots of anything but PostgreSQL before connecting anywhere.
pub fn check_source(snapshot: &Snapshot) -> Result<()> {
    if snapshot.source == SOURCE {
        return Ok(());
    }
    Err(crate::Error::invalid(format!(
        "this is a '{}' snapshot, not a PostgreSQL one",
        snapshot.source
    )))
}

/// The tables a snapshot recorded at dump time (empty for other sources).
pub fn recorded_tables(snapshot: &Snapshot) -> Result<Vec<TableRows>> {
    match snapshot.meta.iter().find(|(k, _)| k == PG_TABLES_KEY) {
        Some((_, bytes)) => pg_tables::decode(bytes),
        None => Ok(vec![]),
    }
}

/// What a snapshot recorded about its databases (nothing for snapshots
/// made before vault recorded it).
pub fn recorded_facts(snapshot: &Snapshot) -> Result<Vec<DatabaseFacts>> {
    match snapshot.meta.iter().find(|(k, _)| k == PG_FACTS_KEY) {
        Some((_, bytes)) => pg_facts::decode(bytes),
        None => Ok(vec![]),
    }
}

/// The databases of a snapshot, in the order it recorded them.
pub fn recorded_databases(snapshot: &Snapshot) -> Vec<String> {
    snapshot
        .paths
        .iter()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect()
}
