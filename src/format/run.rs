//! Run records (`runs/<id>`, format-spec/README.md, "Run records"): the
//! outcome of one task of `vault run` (a source's backup, a scheduled
//! check), failures included, so success rates and the last failure can be
//! read back from the repository itself.
//!
//! ```text
//! version u8 (=1) | time | host string | task string | passed u8 (0/1)
//! | duration_ms u64 LE | message string | snapshot option<id> | bytes u64 LE
//! | steps: list<(name string | passed u8 | detail string)>
//! ```

use super::codec::{Reader, Writer};
use super::id::Id;
use super::Timestamp;
use crate::error::Result;

pub const RUN_VERSION: u8 = 1;

/// One step of a run: `snapshot`, `verify`, `copy <target>`, `forget`,
/// `prune`, `drill`, `check`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub name: String,
    pub passed: bool,
    /// What it did, or why it failed.
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRecord {
    /// When the task started.
    pub time: Timestamp,
    pub host: String,
    /// The plan's source name, or `@check` for a scheduled repository check.
    pub task: String,
    pub passed: bool,
    pub duration_ms: u64,
    /// The first failure's message; empty when the run passed.
    pub message: String,
    /// The snapshot the run stored, if it got that far.
    pub snapshot: Option<Id>,
    /// Bytes the source held (every file's size): the size trend's measure.
    pub bytes: u64,
    pub steps: Vec<Step>,
}

fn flag(r: &mut Reader<'_>) -> Result<bool> {
    match r.u8()? {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(r.error("flag is neither 0 nor 1")),
    }
}

impl RunRecord {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(RUN_VERSION);
        self.time.write(&mut w);
        w.str(&self.host);
        w.str(&self.task);
        w.u8(u8::from(self.passed));
        w.u64(self.duration_ms);
        w.str(&self.message);
        w.opt_id(self.snapshot.as_ref());
        w.u64(self.bytes);
        w.list(&self.steps, |w, s| {
            w.str(&s.name);
            w.u8(u8::from(s.passed));
            w.str(&s.detail);
        });
        w.into_bytes()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes, "run record");
        r.expect_version(RUN_VERSION)?;
        let time = Timestamp::read(&mut r)?;
        let host = r.string()?;
        let task = r.string()?;
        let passed = flag(&mut r)?;
        let duration_ms = r.u64()?;
        let message = r.string()?;
        let snapshot = r.opt_id()?;
        let bytes = r.u64()?;
        let steps = r.list(3, |r| {
            Ok(Step {
                name: r.string()?,
                passed: flag(r)?,
                detail: r.string()?,
            })
        })?;
        r.finish()?;
        Ok(RunRecord {
            time,
            host,
            task,
            passed,
            duration_ms,
            message,
            snapshot,
            bytes,
            steps,
        })
    }
}
