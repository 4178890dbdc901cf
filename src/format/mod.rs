//! On-disk bytes, and nothing else: no I/O, no keys. Each file here mirrors a
//! section of format-spec/README.md; the constants are the spec's, one to one.

pub mod codec;
pub mod config;
pub mod delta;
pub mod drill;
pub mod id;
pub mod index;
pub mod keyfile;
pub mod limits;
pub mod lock;
pub mod marks;
pub mod pack;
pub mod payload;
pub mod pg_base;
pub mod pg_facts;
pub mod pg_parts;
pub mod pg_tables;
pub mod run;
pub mod sealed;
pub mod snapshot;
pub mod tree;
pub mod verified;
pub mod wal;
pub mod wal_key;

pub use id::Id;

/// Version of the repository format as a whole, recorded in the config.
/// Version 2 repositories may store blobs as deltas and hold a WAL archive,
/// which only tools that know them keep; version 1 ones never do until
/// `vault upgrade` rewrites their config. Version 3 lets a delta's base be
/// a delta itself (chains of up to `delta::MAX_LINKS` links).
pub const REPO_VERSION: u32 = 3;
/// The oldest repository format still read and written.
pub const MIN_REPO_VERSION: u32 = 1;

/// The repository versions this build reads.
pub const SUPPORTED_REPO_VERSIONS: std::ops::RangeInclusive<u32> = MIN_REPO_VERSION..=REPO_VERSION;

/// The two kinds of blob stored in packs. The numbers are part of the format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum BlobKind {
    Data = 1,
    Tree = 2,
}

impl BlobKind {
    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            1 => Some(BlobKind::Data),
            2 => Some(BlobKind::Tree),
            _ => None,
        }
    }

    pub fn box_kind(self) -> sealed::BoxKind {
        match self {
            BlobKind::Data => sealed::BoxKind::DataBlob,
            BlobKind::Tree => sealed::BoxKind::TreeBlob,
        }
    }
}

/// Seconds and nanoseconds since the Unix epoch (may be negative for mtimes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp {
    pub secs: i64,
    pub nanos: u32,
}

impl Timestamp {
    pub fn now() -> Self {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp {
            secs: d.as_secs() as i64,
            nanos: d.subsec_nanos(),
        }
    }

    /// The UTC calendar date and time of day: year, month, day, hour,
    /// minute, second (proleptic Gregorian, valid for any stored time).
    pub fn utc(&self) -> (i64, u32, u32, u32, u32, u32) {
        let days = self.secs.div_euclid(86_400);
        let rem = self.secs.rem_euclid(86_400);
        // Civil-from-days: eras of 400 years, years starting in March.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        (
            year,
            month as u32,
            day as u32,
            (rem / 3600) as u32,
            (rem % 3600 / 60) as u32,
            (rem % 60) as u32,
        )
    }

    pub(crate) fn write(&self, w: &mut codec::Writer) {
        w.i64(self.secs);
        w.u32(self.nanos);
    }

    pub(crate) fn read(r: &mut codec::Reader<'_>) -> crate::Result<Self> {
        let secs = r.i64()?;
        let nanos = r.u32()?;
        if nanos >= 1_000_000_000 {
            return Err(r.error("nanoseconds out of range"));
        }
        Ok(Timestamp { secs, nanos })
    }
}

/// Object magic numbers: the first four bytes of each stored object kind.
pub mod magic {
    pub const CONFIG: &[u8; 4] = b"VLTC";
    pub const KEY: &[u8; 4] = b"VLTK";
    pub const INDEX: &[u8; 4] = b"VLTI";
    pub const SNAPSHOT: &[u8; 4] = b"VLTS";
    pub const LOCK: &[u8; 4] = b"VLTL";
    pub const DRILL: &[u8; 4] = b"VLTD";
    pub const VERIFIED: &[u8; 4] = b"VLTV";
    pub const MARKS: &[u8; 4] = b"VLTM";
    pub const RUN: &[u8; 4] = b"VLTR";
    /// An archived PostgreSQL WAL file (`wal/`).
    pub const WAL: &[u8; 4] = b"VLTW";
    /// Packs end with this, after the header length.
    pub const PACK: &[u8; 4] = b"VLTP";
}

/// Where each object kind lives in the repository (format-spec, "Layout").
pub mod layout {
    use super::Id;

    pub const CONFIG: &str = "config";
    pub const KEYS: &str = "keys/";
    pub const DATA: &str = "data/";
    pub const INDEX: &str = "index/";
    pub const SNAPSHOTS: &str = "snapshots/";
    pub const LOCKS: &str = "locks/";
    pub const DRILLS: &str = "drills/";
    /// Which packs `check` read in full, and when (format version 2).
    pub const VERIFIED: &str = "verified/";
    /// Packs prune marked for deletion (format version 3).
    pub const MARKS: &str = "marks/";
    /// Outcomes of `vault run`'s tasks, failures included.
    pub const RUNS: &str = "runs/";
    /// Archived PostgreSQL WAL files, by their PostgreSQL names.
    pub const WAL: &str = "wal/";

    pub fn key(id: &Id) -> String {
        format!("{KEYS}{id}")
    }

    /// Packs fan out over 256 directories so no directory grows too large.
    pub fn pack(id: &Id) -> String {
        let hex = id.to_hex();
        format!("{DATA}{}/{hex}", &hex[..2])
    }

    pub fn index(id: &Id) -> String {
        format!("{INDEX}{id}")
    }

    pub fn snapshot(id: &Id) -> String {
        format!("{SNAPSHOTS}{id}")
    }
}
