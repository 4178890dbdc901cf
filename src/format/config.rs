//! Repository config: written by `init`, rewritten only by `upgrade`.
//! Stored as `"VLTC" | sealed box (Config)`; this module encodes the body.

use super::codec::{Reader, Writer};
use super::id::Id;
use crate::error::{Error, Result};

pub const CONFIG_VERSION: u8 = 1;

/// FastCDC as published in 2020, normalization level 1, gear table XORed with
/// a seed derived from the repository's chunker key.
pub const CHUNKER_FASTCDC_2020: u8 = 1;

// Limits of the FastCDC implementation; a config outside them is corrupt.
pub const CHUNK_MIN_RANGE: (u32, u32) = (64, 1 << 20);
pub const CHUNK_AVG_RANGE: (u32, u32) = (256, 4 << 20);
pub const CHUNK_MAX_RANGE: (u32, u32) = (1024, 16 << 20);
pub const PACK_TARGET_RANGE: (u32, u32) = (1 << 20, 1 << 30);

/// Defaults chosen by measurement (format-spec/README.md, "Chunking").
pub const DEFAULT_CHUNK_MIN: u32 = 64 << 10;
pub const DEFAULT_CHUNK_AVG: u32 = 256 << 10;
pub const DEFAULT_CHUNK_MAX: u32 = 1 << 20;
pub const DEFAULT_PACK_TARGET: u32 = 16 << 20;
pub const DEFAULT_COMPRESSION: i32 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkerParams {
    pub kind: u8,
    pub min: u32,
    pub avg: u32,
    pub max: u32,
}

impl Default for ChunkerParams {
    fn default() -> Self {
        ChunkerParams {
            kind: CHUNKER_FASTCDC_2020,
            min: DEFAULT_CHUNK_MIN,
            avg: DEFAULT_CHUNK_AVG,
            max: DEFAULT_CHUNK_MAX,
        }
    }
}

impl ChunkerParams {
    pub fn validate(&self) -> Result<()> {
        let within = |v: u32, (lo, hi): (u32, u32)| v >= lo && v <= hi;
        if self.kind != CHUNKER_FASTCDC_2020 {
            return Err(Error::new(
                crate::ErrorKind::Unsupported,
                format!("chunker kind {} is not supported", self.kind),
            ));
        }
        let sizes_ok = within(self.min, CHUNK_MIN_RANGE)
            && within(self.avg, CHUNK_AVG_RANGE)
            && within(self.max, CHUNK_MAX_RANGE)
            && self.min <= self.avg
            && self.avg <= self.max
            && self.avg.is_power_of_two();
        if !sizes_ok {
            return Err(Error::invalid(format!(
                "chunk sizes min {} avg {} max {} are out of range (avg must be a power of two, min <= avg <= max)",
                self.min, self.avg, self.max
            )));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub repo_version: u32,
    pub repo_id: Id,
    pub chunker: ChunkerParams,
    pub pack_target: u32,
    pub compression: i32,
    pub created: super::Timestamp,
}

impl Config {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(CONFIG_VERSION);
        w.u32(self.repo_version);
        w.id(&self.repo_id);
        w.u8(self.chunker.kind);
        w.u32(self.chunker.min);
        w.u32(self.chunker.avg);
        w.u32(self.chunker.max);
        w.u32(self.pack_target);
        w.u32(self.compression as u32);
        self.created.write(&mut w);
        w.into_bytes()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes, "config");
        r.expect_version(CONFIG_VERSION)?;
        let repo_version = r.u32()?;
        if !super::SUPPORTED_REPO_VERSIONS.contains(&repo_version) {
            return Err(Error::new(
                crate::ErrorKind::Unsupported,
                format!("repository format version {repo_version} is not supported"),
            ));
        }
        let repo_id = r.id()?;
        let chunker = ChunkerParams {
            kind: r.u8()?,
            min: r.u32()?,
            avg: r.u32()?,
            max: r.u32()?,
        };
        let pack_target = r.u32()?;
        let compression = r.u32()? as i32;
        let created = super::Timestamp::read(&mut r)?;
        r.finish()?;
        let config = Config {
            repo_version,
            repo_id,
            chunker,
            pack_target,
            compression,
            created,
        };
        config.validate().map_err(|e| match e.kind() {
            crate::ErrorKind::Unsupported => e,
            _ => Error::corrupt(format!("config: {}", e.context())),
        })?;
        Ok(config)
    }

    /// Whether writers may store blobs as deltas (format version 2 on).
    pub fn deltas(&self) -> bool {
        self.delta_links() > 0
    }

    /// The most links a writer may give a delta chain: none before format
    /// 2, one in format 2 (a base is always whole), `delta::MAX_LINKS` from
    /// format 3.
    pub fn delta_links(&self) -> usize {
        match self.repo_version {
            0 | 1 => 0,
            2 => 1,
            _ => super::delta::MAX_LINKS,
        }
    }

    pub fn validate(&self) -> Result<()> {
        self.chunker.validate()?;
        let (lo, hi) = PACK_TARGET_RANGE;
        if self.pack_target < lo || self.pack_target > hi {
            return Err(Error::invalid(format!(
                "pack size {} is out of range",
                self.pack_target
            )));
        }
        if !(0..=22).contains(&self.compression) {
            return Err(Error::invalid(format!(
                "compression level {} is out of range 0..=22",
                self.compression
            )));
        }
        Ok(())
    }
}
