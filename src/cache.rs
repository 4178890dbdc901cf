//! The local index cache: an SQLite file per repository that answers "where
//! is blob X?" without holding the whole index in memory. It is never the
//! source of truth: it mirrors the repository's effective index (the index
//! objects present, less those another present one supersedes), and a
//! schema change, a different repository or an index object that left the
//! effective index drops its entries and rebuilds them. `bases` keeps the
//! bytes deltas are stored against, for remote repositories.

pub mod bases;

use std::collections::{HashMap, HashSet};
use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

use crate::error::{Error, ErrorKind, Result};
use crate::format::index::IndexBody;
use crate::format::{BlobKind, Id};

/// Bumped whenever the tables change; an older cache is dropped and rebuilt.
const SCHEMA_VERSION: i64 = 4;

/// Where a blob is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobLocation {
    pub kind: BlobKind,
    pub pack: Id,
    pub offset: u32,
    pub stored_len: u32,
    pub raw_len: u32,
    /// Size of the whole pack, as indexed.
    pub pack_size: u64,
    /// The base of a blob stored as a delta.
    pub base: Option<Id>,
}

pub struct IndexCache {
    conn: Connection,
}

fn db_err(e: rusqlite::Error) -> Error {
    Error::with_source(ErrorKind::Io, "local index cache", e)
}

fn id_from_row(bytes: Vec<u8>) -> rusqlite::Result<Id> {
    Id::from_slice(&bytes).ok_or(rusqlite::Error::InvalidQuery)
}

impl IndexCache {
    /// Open (or create) the cache at `path`, or an in-memory one for `None`.
    /// A cache written by another schema or for another repository is wiped.
    pub fn open(path: Option<&Path>, repo_id: &Id) -> Result<Self> {
        let conn = match path {
            Some(p) => {
                if let Some(dir) = p.parent() {
                    std::fs::create_dir_all(dir).map_err(|e| {
                        Error::io(format!("create cache folder {}", dir.display()), e)
                    })?;
                }
                Connection::open(p).map_err(db_err)?
            }
            None => Connection::open_in_memory().map_err(db_err)?,
        };
        conn.busy_timeout(std::time::Duration::from_secs(60))
            .map_err(db_err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(db_err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(db_err)?;
        let mut cache = IndexCache { conn };
        let version: i64 = cache
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(db_err)?;
        // The cache is only a copy: anything unexpected in it (another
        // schema, another repository, a schema a killed process left half
        // made by an older build) is wiped rather than reported.
        let stored_repo: Option<Vec<u8>> = if version == SCHEMA_VERSION {
            cache
                .conn
                .query_row("SELECT value FROM meta WHERE key = 'repo_id'", [], |r| {
                    r.get(0)
                })
                .optional()
                .unwrap_or(None)
        } else {
            None
        };
        if stored_repo.as_deref() != Some(repo_id.as_bytes().as_slice()) {
            cache.recreate(repo_id)?;
        }
        Ok(cache)
    }

    /// One transaction: a process killed halfway leaves the old cache or
    /// the new empty one, never tables without the version that describes
    /// them.
    fn recreate(&mut self, repo_id: &Id) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(db_err)?;
        tx.execute_batch(
                "DROP TABLE IF EXISTS meta;
                 DROP TABLE IF EXISTS index_objects;
                 DROP TABLE IF EXISTS supersedes;
                 DROP TABLE IF EXISTS packs;
                 DROP TABLE IF EXISTS blobs;
                 CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
                 CREATE TABLE index_objects (id BLOB PRIMARY KEY, loaded INTEGER NOT NULL);
                 CREATE TABLE supersedes (by BLOB NOT NULL, id BLOB NOT NULL, PRIMARY KEY (by, id)) WITHOUT ROWID;
                 CREATE TABLE packs (n INTEGER PRIMARY KEY, id BLOB NOT NULL UNIQUE, size INTEGER NOT NULL);
                 CREATE TABLE blobs (
                     id BLOB NOT NULL, kind INTEGER NOT NULL, pack INTEGER NOT NULL,
                     offset INTEGER NOT NULL, stored_len INTEGER NOT NULL, raw_len INTEGER NOT NULL,
                     base BLOB,
                     PRIMARY KEY (id, kind)
                 ) WITHOUT ROWID;",
            )
            .map_err(db_err)?;
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('repo_id', ?1)",
            [repo_id.as_bytes().as_slice()],
        )
        .map_err(db_err)?;
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(db_err)?;
        tx.commit().map_err(db_err)
    }

    pub fn clear(&mut self, repo_id: &Id) -> Result<()> {
        self.recreate(repo_id)
    }

    /// Every index object read so far, with whether its entries are loaded
    /// (false for one that was superseded when read).
    pub fn index_objects(&self) -> Result<HashMap<Id, bool>> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, loaded FROM index_objects")
            .map_err(db_err)?;
        let rows = stmt
            .query_map([], |r| Ok((id_from_row(r.get(0)?)?, r.get::<_, bool>(1)?)))
            .map_err(db_err)?;
        rows.collect::<rusqlite::Result<_>>().map_err(db_err)
    }

    /// The index objects whose entries are loaded.
    pub fn loaded_index_objects(&self) -> Result<HashSet<Id>> {
        Ok(self
            .index_objects()?
            .into_iter()
            .filter_map(|(id, loaded)| loaded.then_some(id))
            .collect())
    }

    /// Which of `present` another object of `present` supersedes, from the
    /// `supersedes` lists recorded so far. Objects are immutable and named
    /// by their content, so a list once read stays true.
    pub fn superseded(&self, present: &HashSet<Id>) -> Result<HashSet<Id>> {
        Ok(self
            .supersede_pairs()?
            .into_iter()
            .filter(|(by, id)| by != id && present.contains(by) && present.contains(id))
            .map(|(_, id)| id)
            .collect())
    }

    /// Every object that one of `by` supersedes, whether or not it is still
    /// stored: what a two-phase prune replaced while a backup ran.
    pub fn superseded_by(&self, by: &HashSet<Id>) -> Result<HashSet<Id>> {
        Ok(self
            .supersede_pairs()?
            .into_iter()
            .filter(|(superseding, _)| by.contains(superseding))
            .map(|(_, id)| id)
            .collect())
    }

    /// Every recorded (superseding, superseded) pair.
    fn supersede_pairs(&self) -> Result<Vec<(Id, Id)>> {
        let mut stmt = self
            .conn
            .prepare("SELECT by, id FROM supersedes")
            .map_err(db_err)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((id_from_row(r.get(0)?)?, id_from_row(r.get(1)?)?))
            })
            .map_err(db_err)?;
        rows.map(|row| row.map_err(db_err)).collect()
    }

    /// Record that an index object exists and what it supersedes, without
    /// loading its entries (it is superseded itself).
    pub fn add_superseded_index(&mut self, index_id: &Id, supersedes: &[Id]) -> Result<()> {
        let tx = self.conn.transaction().map_err(db_err)?;
        record_object(&tx, index_id, supersedes, false)?;
        tx.commit().map_err(db_err)
    }

    /// Drop every entry, keeping what is known about the objects in
    /// `present` (and forgetting the others), so that the effective index
    /// can be loaded again.
    pub fn unload(&mut self, present: &HashSet<Id>) -> Result<()> {
        let known = self.index_objects()?;
        let tx = self.conn.transaction().map_err(db_err)?;
        tx.execute_batch(
            "DELETE FROM blobs; DELETE FROM packs; UPDATE index_objects SET loaded = 0;",
        )
        .map_err(db_err)?;
        for id in known.keys().filter(|id| !present.contains(id)) {
            let id = id.as_bytes().as_slice();
            tx.execute("DELETE FROM index_objects WHERE id = ?1", [id])
                .map_err(db_err)?;
            tx.execute("DELETE FROM supersedes WHERE by = ?1", [id])
                .map_err(db_err)?;
        }
        tx.commit().map_err(db_err)
    }

    /// Record one index object's entries (and its `supersedes` list). The
    /// first location seen for a blob wins, except that a whole copy
    /// replaces one stored as a delta (a base must be read whole);
    /// duplicates in other packs are harmless.
    pub fn add_index(&mut self, index_id: Option<&Id>, body: &IndexBody) -> Result<()> {
        let tx = self.conn.transaction().map_err(db_err)?;
        {
            let mut add_pack = tx
                .prepare_cached("INSERT OR IGNORE INTO packs (id, size) VALUES (?1, ?2)")
                .map_err(db_err)?;
            let mut pack_n = tx
                .prepare_cached("SELECT n FROM packs WHERE id = ?1")
                .map_err(db_err)?;
            let mut add_blob = tx
                .prepare_cached(
                    "INSERT INTO blobs (id, kind, pack, offset, stored_len, raw_len, base)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                     ON CONFLICT (id, kind) DO UPDATE SET pack = excluded.pack,
                         offset = excluded.offset, stored_len = excluded.stored_len,
                         raw_len = excluded.raw_len, base = NULL
                     WHERE blobs.base IS NOT NULL AND excluded.base IS NULL",
                )
                .map_err(db_err)?;
            for pack in &body.packs {
                add_pack
                    .execute(params![pack.id.as_bytes().as_slice(), pack.size as i64])
                    .map_err(db_err)?;
                let n: i64 = pack_n
                    .query_row([pack.id.as_bytes().as_slice()], |r| r.get(0))
                    .map_err(db_err)?;
                for b in &pack.blobs {
                    add_blob
                        .execute(params![
                            b.id.as_bytes().as_slice(),
                            b.kind as u8,
                            n,
                            b.offset,
                            b.stored_len,
                            b.raw_len,
                            b.base.as_ref().map(|b| b.as_bytes().to_vec())
                        ])
                        .map_err(db_err)?;
                }
            }
        }
        if let Some(id) = index_id {
            record_object(&tx, id, &body.supersedes, true)?;
        }
        tx.commit().map_err(db_err)
    }

    /// Run `f`'s lookups in one read transaction: each statement outside
    /// one opens and closes its own, which takes and drops the WAL's read
    /// lock (system calls) every time.
    pub fn reading<T>(&self, f: impl FnOnce(&Self) -> Result<T>) -> Result<T> {
        if !self.conn.is_autocommit() {
            return f(self);
        }
        self.conn.execute_batch("BEGIN").map_err(db_err)?;
        let result = f(self);
        // Nothing was written: ending it can only fail to release the
        // lock, and the connection must not stay inside the transaction.
        if let Err(e) = self.conn.execute_batch("COMMIT") {
            let _ = self.conn.execute_batch("ROLLBACK");
            return result.and(Err(db_err(e)));
        }
        result
    }

    /// Blobs are looked up by kind and id together: a file whose bytes
    /// happen to equal a tree's encoding has the same id, and is another blob.
    pub fn lookup(&self, kind: BlobKind, id: &Id) -> Result<Option<BlobLocation>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT p.id, b.offset, b.stored_len, b.raw_len, p.size, b.base
                 FROM blobs b JOIN packs p ON p.n = b.pack WHERE b.id = ?1 AND b.kind = ?2",
            )
            .map_err(db_err)?;
        stmt.query_row(params![id.as_bytes().as_slice(), kind as u8], |r| {
            Ok(BlobLocation {
                kind,
                pack: id_from_row(r.get(0)?)?,
                offset: r.get(1)?,
                stored_len: r.get(2)?,
                raw_len: r.get(3)?,
                pack_size: r.get::<_, i64>(4)? as u64,
                base: r
                    .get::<_, Option<Vec<u8>>>(5)?
                    .map(id_from_row)
                    .transpose()?,
            })
        })
        .optional()
        .map_err(db_err)
    }

    /// Every indexed pack and its size.
    pub fn packs(&self) -> Result<Vec<(Id, u64)>> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, size FROM packs")
            .map_err(db_err)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((id_from_row(r.get(0)?)?, r.get::<_, i64>(1)? as u64))
            })
            .map_err(db_err)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db_err)
    }

    pub fn contains(&self, kind: BlobKind, id: &Id) -> Result<bool> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT 1 FROM blobs WHERE id = ?1 AND kind = ?2")
            .map_err(db_err)?;
        stmt.exists(params![id.as_bytes().as_slice(), kind as u8])
            .map_err(db_err)
    }
}

fn record_object(
    tx: &rusqlite::Transaction<'_>,
    id: &Id,
    supersedes: &[Id],
    loaded: bool,
) -> Result<()> {
    tx.execute(
        "INSERT INTO index_objects (id, loaded) VALUES (?1, ?2)
         ON CONFLICT (id) DO UPDATE SET loaded = excluded.loaded",
        params![id.as_bytes().as_slice(), loaded],
    )
    .map_err(db_err)?;
    for old in supersedes {
        tx.execute(
            "INSERT OR IGNORE INTO supersedes (by, id) VALUES (?1, ?2)",
            [id.as_bytes().as_slice(), old.as_bytes().as_slice()],
        )
        .map_err(db_err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::index::{IndexBlob, IndexPack};

    fn body(pack: u8, blobs: &[u8]) -> IndexBody {
        IndexBody {
            supersedes: vec![],
            packs: vec![IndexPack {
                id: Id::from_bytes([pack; 32]),
                size: 1000,
                blobs: blobs
                    .iter()
                    .enumerate()
                    .map(|(i, b)| IndexBlob {
                        kind: BlobKind::Data,
                        id: Id::from_bytes([*b; 32]),
                        offset: i as u32 * 10,
                        stored_len: 10,
                        raw_len: 20,
                        base: None,
                    })
                    .collect(),
            }],
        }
    }

    #[test]
    fn lookups_find_what_was_added_and_a_new_repository_wipes_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sqlite");
        let repo = Id::from_bytes([1; 32]);
        let mut c = IndexCache::open(Some(&path), &repo).unwrap();
        c.add_index(Some(&Id::from_bytes([9; 32])), &body(5, &[7, 8]))
            .unwrap();
        let loc = c
            .lookup(BlobKind::Data, &Id::from_bytes([8; 32]))
            .unwrap()
            .unwrap();
        assert_eq!((loc.pack, loc.offset), (Id::from_bytes([5; 32]), 10));
        assert!(c
            .lookup(BlobKind::Tree, &Id::from_bytes([8; 32]))
            .unwrap()
            .is_none());
        assert!(!c
            .contains(BlobKind::Data, &Id::from_bytes([6; 32]))
            .unwrap());
        drop(c);
        let c = IndexCache::open(Some(&path), &repo).unwrap();
        assert_eq!(
            c.loaded_index_objects().unwrap(),
            HashSet::from([Id::from_bytes([9; 32])])
        );
        drop(c);
        let c = IndexCache::open(Some(&path), &Id::from_bytes([2; 32])).unwrap();
        assert!(c.index_objects().unwrap().is_empty());
        assert!(!c
            .contains(BlobKind::Data, &Id::from_bytes([8; 32]))
            .unwrap());
    }
}
