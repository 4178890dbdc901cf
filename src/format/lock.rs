//! Lock objects (`locks/<id>`): `"VLTL" | sealed box (Lock)`. A lock says
//! who is working on the repository and how: shared (backups, forget) or
//! exclusive (prune). Its holder rewrites it under a new name while it runs,
//! so the refresh time shows that the holder is alive.

use super::codec::{Reader, Writer};
use super::Timestamp;
use crate::error::Result;

pub const LOCK_VERSION: u8 = 1;

/// How a lock combines with others. The numbers are part of the format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum LockMode {
    /// Any number of shared locks may be held at once.
    Shared = 1,
    /// Excludes every other lock.
    Exclusive = 2,
    /// Prune's two-phase deletion (format version 3): excludes exclusive
    /// locks and other prunes, not backups.
    Prune = 3,
}

impl LockMode {
    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            1 => Some(LockMode::Shared),
            2 => Some(LockMode::Exclusive),
            3 => Some(LockMode::Prune),
            _ => None,
        }
    }

    pub fn conflicts_with(self, other: LockMode) -> bool {
        self == LockMode::Exclusive
            || other == LockMode::Exclusive
            || (self == LockMode::Prune && other == LockMode::Prune)
    }

    pub fn name(self) -> &'static str {
        match self {
            LockMode::Shared => "shared",
            LockMode::Exclusive => "exclusive",
            LockMode::Prune => "prune",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lock {
    pub mode: LockMode,
    pub host: String,
    pub user: String,
    pub pid: u32,
    /// The command holding it ("snapshot", "prune", ...), for messages.
    pub purpose: String,
    pub created: Timestamp,
    pub refreshed: Timestamp,
}

impl Lock {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(LOCK_VERSION);
        w.u8(self.mode as u8);
        w.str(&self.host);
        w.str(&self.user);
        w.u32(self.pid);
        w.str(&self.purpose);
        self.created.write(&mut w);
        self.refreshed.write(&mut w);
        w.into_bytes()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes, "lock");
        r.expect_version(LOCK_VERSION)?;
        let mode = LockMode::from_u8(r.u8()?).ok_or_else(|| r.error("unknown lock mode"))?;
        let lock = Lock {
            mode,
            host: r.string()?,
            user: r.string()?,
            pid: r.u32()?,
            purpose: r.string()?,
            created: Timestamp::read(&mut r)?,
            refreshed: Timestamp::read(&mut r)?,
        };
        r.finish()?;
        Ok(lock)
    }
}
