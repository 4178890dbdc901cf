//! Local state of `vault run`: the lock that keeps two runs from
//! overlapping, and the open alerts. Neither is needed to read the
//! repository; losing the alert state only repeats an alert.

use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use super::alerts::AlertState;
use crate::error::{Error, ErrorKind, Result};

/// Held while a run works; released when dropped (or the process dies).
pub struct RunLock {
    _file: File,
}

pub fn lock(dir: &Path) -> Result<RunLock> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir.display().to_string(), e))?;
    let path = dir.join("run.lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io(path.display().to_string(), e))?;
    // SAFETY: flock on a descriptor we own; no memory is involved.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        return Err(Error::new(
            ErrorKind::Locked,
            format!(
                "another vault run is working on this plan (lock {})",
                path.display()
            ),
        ));
    }
    Ok(RunLock { _file: file })
}

fn alerts_path(dir: &Path) -> PathBuf {
    dir.join("alerts.json")
}

/// A missing or unreadable state file is an empty state.
pub fn load_alerts(dir: &Path) -> AlertState {
    std::fs::read(alerts_path(dir))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

pub fn save_alerts(dir: &Path, state: &AlertState) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(state)
        .map_err(|e| Error::invalid(format!("alert state: {e}")))?;
    write_atomically(&alerts_path(dir), &bytes)
}

/// Write a sibling and rename it over `path`, so readers (a metrics
/// collector, the next run) never see half a file.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let place = || path.display().to_string();
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let mut f = File::create(&tmp).map_err(|e| Error::io(place(), e))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(|e| Error::io(place(), e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(place(), e))
}
