//! `drill pg --physical`: prove a base backup and the WAL archive recover.
//! Restore the base backup into a throwaway server's data directory, let
//! it replay the archive to the target (or its end) and promote, run the
//! caller's assertions, and record the time from the first byte restored
//! to the promoted server as the drill's restore time: the recovery time
//! you would get.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::base_backup_of;
use super::restore::{
    is_free, read_tablespace_map, restore_physical, PhysicalRestoreOptions, RecoveryTarget,
};
use crate::engines::pg::session::Session;
use crate::engines::pg::tablespaces::relocate;
use crate::engines::pg::MAINTENANCE_DB;
use crate::error::{Error, Result};
use crate::format::drill::{Check, Drill};
use crate::format::snapshot::Snapshot;
use crate::format::{Id, Timestamp};
use crate::ops::pg::scratch::ScratchServer;
use crate::progress::Progress;
use crate::repo::Repository;
use crate::system::hostname;

#[derive(Debug, Clone)]
pub struct PhysicalDrillOptions {
    pub to: RecoveryTarget,
    /// The `restore_command` the scratch server fetches WAL with.
    pub restore_command: String,
    /// SQL that must return true once recovery is over.
    pub asserts: Vec<String>,
    /// Where the assertions run [default: postgres].
    pub assert_database: Option<String>,
    /// `OLDDIR=NEWDIR` pairs: tablespaces restored elsewhere than the
    /// scratch folder. Each NEWDIR must be missing or empty, is never
    /// where a tablespace lives, and is removed after the drill.
    pub tablespace_mapping: Vec<(PathBuf, PathBuf)>,
}

fn passed(name: &str, detail: String) -> Check {
    Check {
        name: name.to_string(),
        passed: true,
        detail,
    }
}

fn failed(name: &str, detail: String) -> Check {
    Check {
        name: name.to_string(),
        passed: false,
        detail,
    }
}

/// Poll until the server has left recovery; an error when it stopped
/// instead (a target the archive does not reach ends the server).
pub(crate) fn wait_for_promotion(session: &mut Session) -> Result<()> {
    loop {
        if session.value("SELECT pg_is_in_recovery()")? == "f" {
            return Ok(());
        }
        crate::system::interrupt::check()?;
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Restore, recover and check; the checks so far are kept when a step
/// fails. Returns the restore time.
fn recover_and_check(
    repo: &Repository,
    snapshot: &Snapshot,
    opts: &PhysicalDrillOptions,
    checks: &mut Vec<Check>,
    progress: &Progress,
) -> Result<u64> {
    let started = Instant::now();
    let mut restored = None;
    let outside: Vec<PathBuf> = opts
        .tablespace_mapping
        .iter()
        .map(|(_, new)| new.clone())
        .collect();
    let server = ScratchServer::start_from(&outside, |data| {
        let o = restore_physical(
            repo,
            snapshot,
            &PhysicalRestoreOptions {
                target: data.to_path_buf(),
                to: opts.to.clone(),
                restore_command: opts.restore_command.clone(),
                tablespace_mapping: opts.tablespace_mapping.clone(),
                throwaway_tablespaces: Some(ScratchServer::tablespaces_beside(data)),
            },
            progress,
        )?;
        restored = Some(o);
        Ok(())
    });
    let elapsed = || started.elapsed().as_millis() as u64;
    match (&server, &restored) {
        (_, None) => {
            let why = server.err().map(|e| e.to_string()).unwrap_or_default();
            checks.push(failed("restore", why));
            return Ok(elapsed());
        }
        (_, Some(o)) => checks.push(passed(
            "restore",
            format!(
                "{} files, {} bytes in {} ms",
                o.files, o.bytes, o.duration_ms
            ),
        )),
    }
    let server = match server {
        Ok(s) => s,
        Err(e) => {
            checks.push(failed("recovery", e.to_string()));
            return Ok(elapsed());
        }
    };
    progress.set_stage("recovery");
    let conn = server.conn();
    let recovered = Session::open(&conn, Some(MAINTENANCE_DB)).and_then(|mut s| {
        wait_for_promotion(&mut s)?;
        let at = s.value(
            "SELECT pg_current_wal_lsn() || '|' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)",
        )?;
        s.close()?;
        Ok(at)
    });
    let restore_ms = elapsed();
    match recovered {
        Ok(at) => {
            let (lsn, timeline) = at.split_once('|').unwrap_or((&at, "?"));
            checks.push(passed(
                "recovery",
                format!(
                    "promoted at LSN {lsn} on timeline {}",
                    u32::from_str_radix(timeline, 16)
                        .map_or(timeline.to_string(), |t| t.to_string())
                ),
            ));
        }
        Err(e) => {
            checks.push(failed(
                "recovery",
                format!("{e}; server log: {}", server.log_tail(3)),
            ));
            return Ok(restore_ms);
        }
    }
    let db = opts.assert_database.as_deref().unwrap_or(MAINTENANCE_DB);
    let mut session = match Session::open(&conn, Some(db)) {
        Ok(s) => s,
        Err(e) => {
            if !opts.asserts.is_empty() {
                checks.push(failed(&format!("connect {db}"), e.to_string()));
            }
            return Ok(restore_ms);
        }
    };
    for sql in &opts.asserts {
        let name = format!("assert {sql}");
        checks.push(match session.value(&format!("SELECT ({sql})::boolean")) {
            Ok(v) if v == "t" => passed(&name, "returned true".into()),
            Ok(v) => failed(
                &name,
                format!("returned {}", if v.is_empty() { "null" } else { &v }),
            ),
            Err(e) => failed(&name, e.to_string()),
        });
    }
    let _ = session.close();
    Ok(restore_ms)
}

/// Run a physical drill and store its record (also when it failed).
pub fn drill_physical(
    repo: &Repository,
    snapshot_id: &Id,
    snapshot: &Snapshot,
    opts: &PhysicalDrillOptions,
    progress: &Progress,
) -> Result<(Id, Drill)> {
    base_backup_of(snapshot)?;
    // A mapping that could never work is the caller's mistake, not a
    // failed drill: refused before anything is recorded. (The scratch
    // folder does not exist yet; any root checks the same.)
    relocate(
        &read_tablespace_map(repo, snapshot)?,
        &opts.tablespace_mapping,
        Some(Path::new("/")),
    )?;
    // The drill removes each NEWDIR afterwards: only an empty one is taken.
    for (_, new) in &opts.tablespace_mapping {
        if !is_free(new)? {
            return Err(Error::invalid(format!(
                "{} is not empty: a drill maps tablespaces only into empty or new folders, and removes them afterwards",
                new.display()
            )));
        }
    }
    let time = Timestamp::now();
    let mut checks = Vec::new();
    let restore_ms = recover_and_check(repo, snapshot, opts, &mut checks, progress)?;
    if checks.is_empty() {
        return Err(Error::panicked("a drill without checks"));
    }
    let drill = Drill {
        snapshot: *snapshot_id,
        time,
        host: hostname(),
        source: snapshot.source.clone(),
        passed: checks.iter().all(|c| c.passed),
        restore_ms,
        checks,
    };
    let id = repo.save_drill(&drill)?;
    Ok((id, drill))
}
