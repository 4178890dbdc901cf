//! Ctrl-C and SIGTERM during a snapshot: the first signal only sets a flag,
//! so the sources stop being read, the writer seals and uploads what it
//! holds and indexes every stored pack, and no snapshot is recorded. The
//! default disposition comes back at once, so a second signal kills.

use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};

use crate::error::{Error, ErrorKind, Result};

/// The signal received, or 0.
static SIGNAL: AtomicI32 = AtomicI32::new(0);
static PACKS_STORED: AtomicU64 = AtomicU64::new(0);
static PACK_BYTES_STORED: AtomicU64 = AtomicU64::new(0);

extern "C" fn on_stop_signal(sig: libc::c_int) {
    // Only an atomic store: all a signal handler may safely do here.
    SIGNAL.store(sig, Ordering::SeqCst);
}

/// Catch the first SIGINT and SIGTERM. Interrupted system calls restart:
/// an upload or index write in flight must finish, not fail with EINTR.
/// A read blocked on a silent producer waits for it (the terminal's
/// Ctrl-C ends the producer too) or for a second signal.
pub fn catch_stop_signals() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the action is fully initialised; the handler only stores
        // to an atomic, which is async-signal-safe.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_stop_signal as extern "C" fn(libc::c_int) as usize;
            action.sa_flags = libc::SA_RESETHAND | libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(sig, &action, std::ptr::null_mut());
        }
    }
}

/// The stop signal received, if any.
pub fn received() -> Option<i32> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        sig => Some(sig),
    }
}

/// An `Interrupted` error once a stop signal came.
pub fn check() -> Result<()> {
    match received() {
        Some(_) => Err(interrupted()),
        None => Ok(()),
    }
}

pub fn interrupted() -> Error {
    Error::new(ErrorKind::Interrupted, "interrupted")
}

/// Count a pack that reached storage, for the interrupted run's report.
pub(crate) fn note_pack_stored(bytes: u64) {
    PACKS_STORED.fetch_add(1, Ordering::Relaxed);
    PACK_BYTES_STORED.fetch_add(bytes, Ordering::Relaxed);
}

/// Packs (and their bytes) this process stored.
pub fn packs_stored() -> (u64, u64) {
    (
        PACKS_STORED.load(Ordering::Relaxed),
        PACK_BYTES_STORED.load(Ordering::Relaxed),
    )
}
