//! What a physical base backup snapshot records about the WAL it needs
//! (snapshot meta key `pg.base`, format-spec/README.md, "Physical base
//! backups"). Retention keeps the WAL from `start` on for every kept base
//! backup; a restore needs every segment from `start` to `stop` to reach a
//! consistent state, and the archive after `stop` to go further.
//!
//! ```text
//! version u8 (=1) | system_identifier u64 | wal_segment_size u64
//!   | start_timeline u32 | start_lsn u64 | stop_timeline u32 | stop_lsn u64
//! ```

use super::codec::{Reader, Writer};
use super::wal::WalFile;
use crate::error::{Error, Result};

pub const PG_BASE_VERSION: u8 = 1;
/// The snapshot meta key holding the encoded [`BaseBackup`].
pub const PG_BASE_KEY: &str = "pg.base";
/// The snapshot `source` of a physical base backup.
pub const PG_PHYSICAL_SOURCE: &str = "pg-physical";

/// PostgreSQL's WAL segment sizes: a power of two from 1 MiB to 1 GiB.
fn valid_segment_size(size: u64) -> bool {
    size.is_power_of_two() && ((1 << 20)..=(1 << 30)).contains(&size)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BaseBackup {
    /// The cluster's `system_identifier`: WAL of another cluster never fits.
    pub system_identifier: u64,
    /// `wal_segment_size` in bytes.
    pub wal_segment_size: u64,
    pub start_timeline: u32,
    pub start_lsn: u64,
    pub stop_timeline: u32,
    pub stop_lsn: u64,
}

impl BaseBackup {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(PG_BASE_VERSION);
        w.u64(self.system_identifier);
        w.u64(self.wal_segment_size);
        w.u32(self.start_timeline);
        w.u64(self.start_lsn);
        w.u32(self.stop_timeline);
        w.u64(self.stop_lsn);
        w.into_bytes()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes, "pg base backup");
        r.expect_version(PG_BASE_VERSION)?;
        let base = BaseBackup {
            system_identifier: r.u64()?,
            wal_segment_size: r.u64()?,
            start_timeline: r.u32()?,
            start_lsn: r.u64()?,
            stop_timeline: r.u32()?,
            stop_lsn: r.u64()?,
        };
        r.finish()?;
        if !valid_segment_size(base.wal_segment_size) {
            return Err(Error::corrupt(format!(
                "pg base backup: WAL segment size {} is not a power of two from 1 MiB to 1 GiB",
                base.wal_segment_size
            )));
        }
        if base.stop_lsn < base.start_lsn {
            return Err(Error::corrupt("pg base backup: stops before it starts"));
        }
        Ok(base)
    }

    /// The base backup a snapshot's meta list describes, if any.
    pub fn from_meta(meta: &[(String, Vec<u8>)]) -> Result<Option<Self>> {
        meta.iter()
            .find(|(k, _)| k == PG_BASE_KEY)
            .map(|(_, v)| Self::decode(v))
            .transpose()
    }

    /// The segment holding `lsn` on `timeline`, named as PostgreSQL names it.
    pub fn segment_of(&self, timeline: u32, lsn: u64) -> WalFile {
        let n = lsn / self.wal_segment_size;
        let per_log = 0x1_0000_0000 / self.wal_segment_size;
        // Both halves fit: n < 2^64 / 2^20 and per_log >= 4.
        WalFile::Segment {
            timeline,
            log: u32::try_from(n / per_log).unwrap_or(u32::MAX),
            seg: u32::try_from(n % per_log).unwrap_or(u32::MAX),
        }
    }

    /// The first segment a restore of this backup reads.
    pub fn start_segment(&self) -> WalFile {
        self.segment_of(self.start_timeline, self.start_lsn)
    }

    /// The last segment a restore must replay to be consistent.
    pub fn stop_segment(&self) -> WalFile {
        self.segment_of(self.stop_timeline, self.stop_lsn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> BaseBackup {
        BaseBackup {
            system_identifier: 7_300_000_000_000_000_001,
            wal_segment_size: 16 << 20,
            start_timeline: 1,
            start_lsn: 0x2_0000_0028,
            stop_timeline: 1,
            stop_lsn: 0x3_0100_0100,
        }
    }

    #[test]
    fn round_trips_and_names_its_segments() {
        let b = sample();
        assert_eq!(BaseBackup::decode(&b.encode()).unwrap(), b);
        assert_eq!(b.start_segment().name(), "000000010000000200000000");
        assert_eq!(b.stop_segment().name(), "000000010000000300000001");
        let meta = vec![(PG_BASE_KEY.to_string(), b.encode())];
        assert_eq!(BaseBackup::from_meta(&meta).unwrap(), Some(b));
        assert_eq!(BaseBackup::from_meta(&[]).unwrap(), None);
    }

    #[test]
    fn refuses_impossible_values() {
        let mut b = sample();
        b.wal_segment_size = 3 << 20;
        assert!(BaseBackup::decode(&b.encode()).is_err());
        let mut b = sample();
        b.stop_lsn = b.start_lsn - 1;
        assert!(BaseBackup::decode(&b.encode()).is_err());
        let bytes = sample().encode();
        assert!(BaseBackup::decode(&bytes[..bytes.len() - 1]).is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(BaseBackup::decode(&longer).is_err());
    }
}
