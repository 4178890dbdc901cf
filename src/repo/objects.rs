//! Whole objects (index, snapshots): sealed, named by the BLAKE3 hash of their
//! stored bytes, and checked against that name when read.

use super::{random_nonce, Repository};
use crate::error::{Error, ErrorKind, Result};
use crate::format::index::IndexBody;
use crate::format::sealed::BoxKind;
use crate::format::snapshot::Snapshot;
use crate::format::{layout, magic, payload, Id, Timestamp};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    Index,
    Snapshot,
    Lock,
    Drill,
    Verified,
    Marks,
    Run,
}

impl ObjectKind {
    fn dir(self) -> &'static str {
        match self {
            ObjectKind::Index => layout::INDEX,
            ObjectKind::Snapshot => layout::SNAPSHOTS,
            ObjectKind::Lock => layout::LOCKS,
            ObjectKind::Drill => layout::DRILLS,
            ObjectKind::Verified => layout::VERIFIED,
            ObjectKind::Marks => layout::MARKS,
            ObjectKind::Run => layout::RUNS,
        }
    }

    pub fn path(self, id: &Id) -> String {
        format!("{}{id}", self.dir())
    }

    fn magic(self) -> &'static [u8; 4] {
        match self {
            ObjectKind::Index => magic::INDEX,
            ObjectKind::Snapshot => magic::SNAPSHOT,
            ObjectKind::Lock => magic::LOCK,
            ObjectKind::Drill => magic::DRILL,
            ObjectKind::Verified => magic::VERIFIED,
            ObjectKind::Marks => magic::MARKS,
            ObjectKind::Run => magic::RUN,
        }
    }

    fn box_kind(self) -> BoxKind {
        match self {
            ObjectKind::Index => BoxKind::Index,
            ObjectKind::Snapshot => BoxKind::Snapshot,
            ObjectKind::Lock => BoxKind::Lock,
            ObjectKind::Drill => BoxKind::Drill,
            ObjectKind::Verified => BoxKind::CheckState,
            ObjectKind::Marks => BoxKind::Marks,
            ObjectKind::Run => BoxKind::RunRecord,
        }
    }

    /// Largest stored size (format-spec "Limits").
    fn max_stored(self) -> u64 {
        use crate::format::limits::*;
        match self {
            ObjectKind::Index => MAX_INDEX_OBJECT,
            ObjectKind::Snapshot => MAX_SNAPSHOT_OBJECT,
            ObjectKind::Lock => MAX_LOCK_OBJECT,
            ObjectKind::Drill => MAX_DRILL_OBJECT,
            ObjectKind::Verified => MAX_VERIFIED_OBJECT,
            ObjectKind::Marks => MAX_MARKS_OBJECT,
            ObjectKind::Run => MAX_RUN_OBJECT,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ObjectKind::Index => "index",
            ObjectKind::Snapshot => "snapshot",
            ObjectKind::Lock => "lock",
            ObjectKind::Drill => "drill",
            ObjectKind::Verified => "verification record",
            ObjectKind::Marks => "marks",
            ObjectKind::Run => "run record",
        }
    }
}

impl Repository {
    pub fn write_object(&self, kind: ObjectKind, body: &[u8]) -> Result<Id> {
        let mut bytes = Vec::with_capacity(body.len() / 2 + 64);
        bytes.extend_from_slice(kind.magic());
        bytes.extend_from_slice(&self.keys.seal(
            kind.box_kind(),
            None,
            &payload::encode(body, self.config.compression.max(1)),
            random_nonce(),
        ));
        let id = Id::of_object(&bytes);
        self.backend.write(&kind.path(&id), bytes)?;
        Ok(id)
    }

    pub fn read_object(&self, kind: ObjectKind, id: &Id) -> Result<Vec<u8>> {
        let place = format!("{} {}", kind.name(), id.short());
        let bytes = self
            .backend
            .read_capped(&kind.path(id), kind.max_stored())
            .map_err(|e| e.at(&place))?;
        if Id::of_object(&bytes) != *id {
            return Err(Error::corrupt(format!(
                "{place}: content does not match its name"
            )));
        }
        let sealed = bytes
            .strip_prefix(kind.magic().as_slice())
            .ok_or_else(|| Error::corrupt(format!("{place}: wrong magic bytes")))?;
        let plain = self
            .keys
            .open(kind.box_kind(), None, sealed)
            .map_err(|e| e.at(&place))?;
        payload::decode(&plain, payload::MAX_OBJECT_PLAINTEXT).map_err(|e| e.at(&place))
    }

    /// Delete an object; one already gone counts as deleted, so an
    /// interrupted deletion can simply be repeated.
    pub fn delete_object(&self, kind: ObjectKind, id: &Id) -> Result<()> {
        match self.backend.delete(&kind.path(id)) {
            Err(e) if e.kind() != ErrorKind::NotFound => {
                Err(e.at(format!("delete {} {}", kind.name(), id.short())))
            }
            _ => Ok(()),
        }
    }

    pub fn list_objects(&self, kind: ObjectKind) -> Result<Vec<Id>> {
        let mut ids = Vec::new();
        for path in self.backend.list(kind.dir())? {
            let name = path.rsplit('/').next().unwrap_or_default();
            // Foreign files (editor backups, tmp names) are not objects.
            if let Ok(id) = name.parse::<Id>() {
                ids.push(id);
            }
        }
        Ok(ids)
    }

    /// Write an index object and record it in the cache.
    pub fn save_index(&self, body: &IndexBody) -> Result<Id> {
        let id = self.write_object(ObjectKind::Index, &body.encode())?;
        self.index().add_index(Some(&id), body)?;
        self.note_written_index(id, body);
        Ok(id)
    }

    pub fn save_snapshot(&self, snapshot: &Snapshot) -> Result<Id> {
        self.write_object(ObjectKind::Snapshot, &snapshot.encode())
    }

    pub fn load_snapshot(&self, id: &Id) -> Result<Snapshot> {
        Snapshot::decode(&self.read_object(ObjectKind::Snapshot, id)?)
            .map_err(|e| e.at(format!("snapshot {}", id.short())))
    }

    /// Every snapshot, oldest first. An unreadable snapshot is an error: a
    /// listing that silently skips one would hide damage. One deleted
    /// between listing and reading (a concurrent forget) is simply gone.
    pub fn snapshots(&self) -> Result<Vec<(Id, Snapshot)>> {
        use rayon::prelude::*;
        let ids = self.list_objects(ObjectKind::Snapshot)?;
        let mut all = ids
            .par_iter()
            .filter_map(|id| match self.load_snapshot(id) {
                Ok(s) => Some(Ok((*id, s))),
                Err(e) if e.kind() == ErrorKind::NotFound => None,
                Err(e) => Some(Err(e)),
            })
            .collect::<Result<Vec<_>>>()?;
        all.sort_by(|a, b| a.1.time.cmp(&b.1.time).then(a.0.cmp(&b.0)));
        Ok(all)
    }

    /// Resolve a user's snapshot reference: a unique id prefix, or `latest`
    /// (the newest snapshot the filter lets through). An id names one
    /// snapshot whatever the filter says, but one the filter rules out
    /// (a files snapshot given to a pg command) is refused.
    pub fn find_snapshot(&self, spec: &str, filter: &SnapshotFilter) -> Result<(Id, Snapshot)> {
        let all = self.snapshots()?;
        if spec == "latest" {
            return all
                .into_iter()
                .rev()
                .find(|(_, s)| filter.matches(s))
                .ok_or_else(|| {
                    Error::new(
                        ErrorKind::NotFound,
                        format!("no snapshot matches {}", filter.describe()),
                    )
                });
        }
        if spec.is_empty() || !spec.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::invalid(format!(
                "'{spec}' is neither 'latest' nor a hex snapshot id"
            )));
        }
        let spec = spec.to_ascii_lowercase();
        let mut matches = all
            .into_iter()
            .filter(|(id, _)| id.to_hex().starts_with(&spec));
        match (matches.next(), matches.next()) {
            (Some(found), None) => {
                if !filter.sources.is_empty() && !filter.sources.contains(&found.1.source) {
                    return Err(Error::invalid(format!(
                        "snapshot {} is a {} snapshot; this command takes {}",
                        found.0.short(),
                        found.1.source,
                        filter.sources.join(" or ")
                    )));
                }
                Ok(found)
            }
            (None, _) => Err(Error::new(
                ErrorKind::NotFound,
                format!("no snapshot with id {spec}"),
            )),
            (Some(_), Some(_)) => Err(Error::invalid(format!(
                "snapshot id prefix {spec} is ambiguous"
            ))),
        }
    }
}

/// Narrows `latest` (and listings) to the snapshots a command can use.
#[derive(Debug, Clone, Default)]
pub struct SnapshotFilter {
    pub hosts: Vec<String>,
    pub tags: Vec<String>,
    pub paths: Vec<Vec<u8>>,
    /// Sources the command can read ("postgres", "files", ...); any if empty.
    pub sources: Vec<String>,
    /// A path (or stream name) the snapshot must hold.
    pub holding: Option<Vec<u8>>,
    /// Only snapshots taken at or before this time.
    pub at: Option<Timestamp>,
}

impl SnapshotFilter {
    pub fn matches(&self, s: &Snapshot) -> bool {
        (self.hosts.is_empty() || self.hosts.contains(&s.host))
            && self.tags.iter().all(|t| s.tags.contains(t))
            && (self.paths.is_empty() || self.paths.iter().all(|p| s.paths.contains(p)))
            && (self.sources.is_empty() || self.sources.contains(&s.source))
            && self.holding.as_ref().is_none_or(|p| holds(s, p))
            && self.at.is_none_or(|at| s.time <= at)
    }

    /// What the filter asks for, for a message about finding nothing.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.sources.is_empty() {
            parts.push(format!("source {}", self.sources.join(" or ")));
        }
        if let Some(p) = &self.holding {
            parts.push(format!("holding {}", String::from_utf8_lossy(p)));
        }
        if !self.hosts.is_empty() {
            parts.push(format!("host {}", self.hosts.join(" or ")));
        }
        if !self.tags.is_empty() {
            parts.push(format!("tags {}", self.tags.join(",")));
        }
        for p in &self.paths {
            parts.push(format!("path {}", String::from_utf8_lossy(p)));
        }
        if let Some(at) = self.at {
            parts.push(format!("taken at or before {}", {
                let (y, mo, d, h, mi, se) = at.utc();
                format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{se:02}Z")
            }));
        }
        if parts.is_empty() {
            "(the repository holds no snapshot)".into()
        } else {
            format!("({})", parts.join(", "))
        }
    }
}

/// Whether a snapshot's recorded paths (absolute roots of a file tree, or
/// stream and database names at the top) cover `path`.
fn holds(s: &Snapshot, path: &[u8]) -> bool {
    let trim = |p: &[u8]| -> Vec<u8> {
        let mut p = p;
        while let [b'/', rest @ ..] = p {
            p = rest;
        }
        while let [rest @ .., b'/'] = p {
            p = rest;
        }
        p.to_vec()
    };
    let want = trim(path);
    s.paths.iter().any(|root| {
        let root = trim(root);
        // A database source records its databases (`crm`), stored as a
        // file or folder of that name (`crm.sql`, `shop/`).
        root.is_empty()
            || want == root
            || (want.starts_with(&root)
                && match want.get(root.len()) {
                    Some(b'/') => true,
                    Some(b'.') => s.source != "files",
                    _ => false,
                })
    })
}

impl Repository {
    pub fn save_drill(&self, drill: &crate::format::drill::Drill) -> Result<Id> {
        self.write_object(ObjectKind::Drill, &drill.encode())
    }

    /// Every drill record, oldest first.
    pub fn drills(&self) -> Result<Vec<(Id, crate::format::drill::Drill)>> {
        use rayon::prelude::*;
        let ids = self.list_objects(ObjectKind::Drill)?;
        let mut all = ids
            .par_iter()
            .map(|id| {
                let body = self.read_object(ObjectKind::Drill, id)?;
                let drill = crate::format::drill::Drill::decode(&body)
                    .map_err(|e| e.at(format!("drill {}", id.short())))?;
                Ok((*id, drill))
            })
            .collect::<Result<Vec<_>>>()?;
        all.sort_by(|a, b| a.1.time.cmp(&b.1.time).then(a.0.cmp(&b.0)));
        Ok(all)
    }
}
