//! Snapshot manifests (`snapshots/<id>`): `"VLTS" | sealed box (Snapshot)`.
//! A snapshot is written last: it exists only once everything it references
//! is stored and indexed.

use super::codec::{Reader, Writer};
use super::id::Id;
use super::Timestamp;
use crate::error::Result;

pub const SNAPSHOT_VERSION: u8 = 1;
/// Meta key of the snapshot's total size: plaintext bytes of every file and
/// stream it holds, read or carried over unchanged from the parent (u64 LE).
pub const TOTAL_BYTES_KEY: &str = "total-bytes";

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub files: u64,
    pub dirs: u64,
    pub bytes_read: u64,
    /// Stored (compressed, sealed) bytes of blobs this snapshot added.
    pub bytes_added: u64,
    pub blobs_added: u64,
    pub duration_ms: u64,
    /// Entries that could not be read and were left out.
    pub warnings: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub time: Timestamp,
    pub host: String,
    pub user: String,
    pub tags: Vec<String>,
    /// What produced it: "files", "stdin", "command", later "pg", "redis", ...
    pub source: String,
    /// Absolute paths for "files"; the stream name for streams.
    pub paths: Vec<Vec<u8>>,
    pub root: Id,
    pub parent: Option<Id>,
    pub summary: Summary,
    pub program_version: String,
    /// Source-specific facts (server version, row counts), by key.
    pub meta: Vec<(String, Vec<u8>)>,
}

impl Snapshot {
    /// Plaintext bytes of everything the snapshot holds. Snapshots written
    /// before the `total-bytes` key read every byte they hold, unless they
    /// are file snapshots with a parent, which skip unchanged files: those
    /// have no known total.
    pub fn total_bytes(&self) -> Option<u64> {
        match self.meta.iter().find(|(k, _)| k == TOTAL_BYTES_KEY) {
            Some((_, v)) => <[u8; 8]>::try_from(v.as_slice())
                .ok()
                .map(u64::from_le_bytes),
            None if self.source != "files" || self.parent.is_none() => {
                Some(self.summary.bytes_read)
            }
            None => None,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(SNAPSHOT_VERSION);
        self.time.write(&mut w);
        w.str(&self.host);
        w.str(&self.user);
        w.list(&self.tags, |w, t| w.str(t));
        w.str(&self.source);
        w.list(&self.paths, |w, p| w.bytes(p));
        w.id(&self.root);
        w.opt_id(self.parent.as_ref());
        let s = &self.summary;
        for v in [
            s.files,
            s.dirs,
            s.bytes_read,
            s.bytes_added,
            s.blobs_added,
            s.duration_ms,
            s.warnings,
        ] {
            w.u64(v);
        }
        w.str(&self.program_version);
        w.list(&self.meta, |w, (k, v)| {
            w.str(k);
            w.bytes(v);
        });
        w.into_bytes()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes, "snapshot");
        r.expect_version(SNAPSHOT_VERSION)?;
        let time = Timestamp::read(&mut r)?;
        let host = r.string()?;
        let user = r.string()?;
        let tags = r.list(1, |r| r.string())?;
        let source = r.string()?;
        let paths = r.list(1, |r| Ok(r.bytes()?.to_vec()))?;
        let root = r.id()?;
        let parent = r.opt_id()?;
        let summary = Summary {
            files: r.u64()?,
            dirs: r.u64()?,
            bytes_read: r.u64()?,
            bytes_added: r.u64()?,
            blobs_added: r.u64()?,
            duration_ms: r.u64()?,
            warnings: r.u64()?,
        };
        let program_version = r.string()?;
        let meta = r.list(2, |r| Ok((r.string()?, r.bytes()?.to_vec())))?;
        r.finish()?;
        Ok(Snapshot {
            time,
            host,
            user,
            tags,
            source,
            paths,
            root,
            parent,
            summary,
            program_version,
            meta,
        })
    }
}
