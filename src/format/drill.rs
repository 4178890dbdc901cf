//! Drill records (`drills/<id>`, format-spec/README.md, "Drill records"): the
//! outcome of restoring a snapshot into a throwaway server and checking it.
//! A drill record is an object of its own, written after the snapshot it
//! proves, so snapshots stay immutable.
//!
//! ```text
//! version u8 (=1) | snapshot [32] | time | host string | source string
//! | passed u8 (0/1) | restore_ms u64 LE | checks: list<(name string | passed u8 | detail string)>
//! ```

use super::codec::{Reader, Writer};
use super::id::Id;
use super::Timestamp;
use crate::error::Result;

pub const DRILL_VERSION: u8 = 1;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// What was checked: `rows db.schema.table`, `assert SQL`, `restore`.
    pub name: String,
    pub passed: bool,
    /// Expected and found values, or why the check failed.
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drill {
    pub snapshot: Id,
    pub time: Timestamp,
    pub host: String,
    /// What was restored: "postgres".
    pub source: String,
    pub passed: bool,
    /// Milliseconds the restore took: the recovery time this snapshot gives.
    pub restore_ms: u64,
    pub checks: Vec<Check>,
}

fn flag(r: &mut Reader<'_>) -> Result<bool> {
    match r.u8()? {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(r.error("flag is neither 0 nor 1")),
    }
}

impl Drill {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(DRILL_VERSION);
        w.id(&self.snapshot);
        self.time.write(&mut w);
        w.str(&self.host);
        w.str(&self.source);
        w.u8(u8::from(self.passed));
        w.u64(self.restore_ms);
        w.list(&self.checks, |w, c| {
            w.str(&c.name);
            w.u8(u8::from(c.passed));
            w.str(&c.detail);
        });
        w.into_bytes()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes, "drill");
        r.expect_version(DRILL_VERSION)?;
        let snapshot = r.id()?;
        let time = Timestamp::read(&mut r)?;
        let host = r.string()?;
        let source = r.string()?;
        let passed = flag(&mut r)?;
        let restore_ms = r.u64()?;
        let checks = r.list(3, |r| {
            Ok(Check {
                name: r.string()?,
                passed: flag(r)?,
                detail: r.string()?,
            })
        })?;
        r.finish()?;
        Ok(Drill {
            snapshot,
            time,
            host,
            source,
            passed,
            restore_ms,
            checks,
        })
    }
}
