//! Locks: who works on the repository, so that prune never deletes what a
//! running backup is about to reference.
//!
//! Backups and forget take a shared lock, prune an exclusive one. Taking a
//! lock writes the lock object first and then looks for conflicting locks:
//! of two processes racing for conflicting locks, at least one sees the
//! other, and a process that sees a conflict removes its own lock and waits
//! or gives up. A lock is rewritten every few minutes while its holder runs;
//! one whose holder is gone (same host, no such process) or that has not
//! been refreshed for `STALE_AFTER` is stale and ignored. A holder trusts its
//! own lock only for half that time after its last refresh, and checks it
//! before every step that commits or deletes, so no one can treat a lock as
//! stale while its holder still relies on it.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rand::Rng;

use super::{ObjectKind, Repository};
use crate::error::{Error, ErrorKind, Result};
use crate::format::lock::{Lock, LockMode};
use crate::format::{Id, Timestamp};
use crate::sources::{hostname, username};

/// How often a holder rewrites its lock.
pub const REFRESH_EVERY: Duration = Duration::from_secs(5 * 60);
/// A lock not refreshed for this long belongs to a holder that is gone.
pub const STALE_AFTER: Duration = Duration::from_secs(30 * 60);
/// How long after its last refresh a holder still relies on its lock. The
/// gap to `STALE_AFTER` is the margin for one commit or deletion step and
/// for clocks that disagree a little.
const TRUSTED_FOR: Duration = Duration::from_secs(15 * 60);
/// After a failed refresh, try again sooner than usual.
const RETRY_REFRESH: Duration = Duration::from_secs(30);

/// A lock found in the repository, as `vault unlock` and error messages
/// show it.
#[derive(Debug, Clone)]
pub struct LockInfo {
    pub id: Id,
    /// `None` when the object could not be read (see `unreadable`).
    pub lock: Option<Lock>,
    pub unreadable: Option<String>,
    /// Why the lock is stale, if it is.
    pub stale: Option<String>,
}

impl LockInfo {
    pub fn is_stale(&self) -> bool {
        self.stale.is_some()
    }

    /// One line naming the holder.
    pub fn describe(&self, now: Timestamp) -> String {
        match (&self.lock, &self.unreadable) {
            (Some(l), _) => describe(l, now),
            (None, Some(e)) => format!("unreadable lock {} ({e})", self.id.short()),
            (None, None) => format!("lock {}", self.id.short()),
        }
    }
}

/// `prune (exclusive) by alice@db1, pid 4242, started 3m ago, refreshed 12s ago`
pub fn describe(lock: &Lock, now: Timestamp) -> String {
    format!(
        "{} ({}) by {}@{}, pid {}, started {} ago, refreshed {} ago",
        lock.purpose,
        lock.mode.name(),
        lock.user,
        lock.host,
        lock.pid,
        ago(lock.created, now),
        ago(lock.refreshed, now)
    )
}

fn ago(then: Timestamp, now: Timestamp) -> String {
    let s = now.secs.saturating_sub(then.secs).max(0);
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        _ => format!("{}h", s / 3600),
    }
}

/// Why `lock` is stale, or `None` while its holder may still be alive.
/// `alive` answers whether a process id exists on this host. Pure, so the
/// rule can be tested without processes or clocks.
pub fn staleness(
    lock: &Lock,
    now: Timestamp,
    this_host: &str,
    alive: &dyn Fn(u32) -> bool,
) -> Option<String> {
    if lock.host == this_host && !alive(lock.pid) {
        return Some(format!("process {} on this host is gone", lock.pid));
    }
    let silent = now.secs.saturating_sub(lock.refreshed.secs);
    if silent > STALE_AFTER.as_secs() as i64 {
        return Some(format!("not refreshed for {}", ago(lock.refreshed, now)));
    }
    None
}

/// Whether a process exists on this host. Unknowable ids count as alive:
/// a lock is only ever ignored on evidence.
pub fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return true;
    };
    if pid <= 0 {
        return true;
    }
    // SAFETY: signal 0 only checks whether the process exists.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

fn locked(context: String) -> Error {
    Error::new(ErrorKind::Locked, context)
}

impl Repository {
    /// How long `lock_shared` and `lock_exclusive` wait for a conflicting
    /// lock to go away before giving up (default: not at all).
    pub fn set_lock_wait(&self, wait: Duration) {
        self.lock_wait_ms.store(
            wait.as_millis().min(u64::MAX as u128) as u64,
            Ordering::Relaxed,
        );
    }

    fn lock_wait(&self) -> Duration {
        Duration::from_millis(self.lock_wait_ms.load(Ordering::Relaxed))
    }

    /// Every lock in the repository, with whether it is stale.
    pub fn locks(&self) -> Result<Vec<LockInfo>> {
        let now = Timestamp::now();
        let host = hostname();
        let mut out = Vec::new();
        for id in self.list_objects(ObjectKind::Lock)? {
            let info = match self
                .read_object(ObjectKind::Lock, &id)
                .and_then(|b| Lock::decode(&b))
            {
                Ok(lock) => LockInfo {
                    id,
                    stale: staleness(&lock, now, &host, &process_alive),
                    lock: Some(lock),
                    unreadable: None,
                },
                // Deleted since the listing: its holder refreshed or ended.
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => LockInfo {
                    id,
                    lock: None,
                    unreadable: Some(e.to_string()),
                    stale: None,
                },
            };
            out.push(info);
        }
        Ok(out)
    }

    pub fn remove_lock(&self, id: &Id) -> Result<()> {
        self.delete_object(ObjectKind::Lock, id)
    }

    /// For work that adds to the repository (backups) or removes only
    /// snapshots (forget): any number may run at once, but not beside prune.
    pub fn lock_shared(self: &Arc<Self>, purpose: &str) -> Result<LockGuard> {
        self.take_lock(LockMode::Shared, purpose)
    }

    /// For work that deletes data (prune): excludes every other lock.
    pub fn lock_exclusive(self: &Arc<Self>, purpose: &str) -> Result<LockGuard> {
        self.take_lock(LockMode::Exclusive, purpose)
    }

    /// For prune's two-phase deletion: backups go on, other prunes and
    /// exclusive holders are kept out.
    pub fn lock_prune(self: &Arc<Self>, purpose: &str) -> Result<LockGuard> {
        self.take_lock(LockMode::Prune, purpose)
    }

    fn take_lock(self: &Arc<Self>, mode: LockMode, purpose: &str) -> Result<LockGuard> {
        let deadline = Instant::now() + self.lock_wait();
        let now = Timestamp::now();
        let mine = Lock {
            mode,
            host: hostname(),
            user: username(),
            pid: std::process::id(),
            purpose: purpose.to_string(),
            created: now,
            refreshed: now,
        };
        loop {
            let mut blocker = self.conflict(mode, None)?;
            if blocker.is_none() {
                let id = self.write_object(ObjectKind::Lock, &mine.encode())?;
                // Looking again after writing is what makes racing takers
                // safe: whichever of two writes came last sees the other.
                match self.conflict(mode, Some(&id)) {
                    Ok(None) => {
                        let guard = LockGuard::start(self.clone(), id, mine);
                        // Whatever ran before we held the lock (a prune) may
                        // have replaced index objects the cache still lists.
                        if self.index_synced.load(Ordering::Relaxed) {
                            self.sync_index()?;
                        }
                        return Ok(guard);
                    }
                    Ok(Some(other)) => {
                        self.remove_lock(&id)?;
                        blocker = Some(other);
                    }
                    Err(e) => {
                        let _ = self.remove_lock(&id);
                        return Err(e);
                    }
                }
            }
            let now = Instant::now();
            if now >= deadline {
                let holder = blocker.unwrap_or_default();
                return Err(locked(format!(
                    "repository is locked by {holder}; if that process is gone, `vault unlock` removes stale locks (`--all` removes any)"
                )));
            }
            // Randomised, so two takers that keep meeting drift apart.
            let pause = Duration::from_millis(rand::thread_rng().gen_range(200..1500));
            std::thread::sleep(pause.min(deadline - now));
        }
    }

    /// The first live lock (other than `own`) that conflicts with `mode`.
    fn conflict(&self, mode: LockMode, own: Option<&Id>) -> Result<Option<String>> {
        let now = Timestamp::now();
        Ok(self
            .locks()?
            .into_iter()
            .filter(|l| Some(&l.id) != own && !l.is_stale())
            .find(|l| l.lock.as_ref().is_none_or(|o| mode.conflicts_with(o.mode)))
            .map(|l| l.describe(now)))
    }
}

struct Held {
    repo: Arc<Repository>,
    /// The lock object's current name and content.
    current: Mutex<(Id, Lock)>,
    refreshed_at: Mutex<Instant>,
    stop: Mutex<bool>,
    wake: Condvar,
}

fn locked_mutex<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A held lock: refreshed in the background, removed when dropped.
pub struct LockGuard {
    held: Arc<Held>,
    refresher: Option<JoinHandle<()>>,
}

impl LockGuard {
    fn start(repo: Arc<Repository>, id: Id, lock: Lock) -> Self {
        let held = Arc::new(Held {
            repo,
            current: Mutex::new((id, lock)),
            refreshed_at: Mutex::new(Instant::now()),
            stop: Mutex::new(false),
            wake: Condvar::new(),
        });
        let refresher = {
            let held = held.clone();
            std::thread::Builder::new()
                .name("vault-lock".into())
                .spawn(move || refresh_loop(&held))
                .ok()
        };
        LockGuard { held, refresher }
    }

    pub fn id(&self) -> Id {
        locked_mutex(&self.held.current).0
    }

    /// Fails unless the lock is still ours and fresh: call it before every
    /// step that commits or deletes. A lock that could not be refreshed for
    /// a long time may already look stale to others.
    pub fn check(&self) -> Result<()> {
        let age = locked_mutex(&self.held.refreshed_at).elapsed();
        if age > TRUSTED_FOR {
            return Err(locked(format!(
                "our lock was last refreshed {}s ago; others may treat it as stale, so stopping",
                age.as_secs()
            )));
        }
        // Held across the check so a refresh cannot swap names under it.
        let current = locked_mutex(&self.held.current);
        let path = ObjectKind::Lock.path(&current.0);
        if !self.held.repo.backend().exists(&path)? {
            return Err(locked(format!(
                "our lock {} was removed by another process (vault unlock --all?), so stopping",
                current.0.short()
            )));
        }
        Ok(())
    }
}

fn refresh_loop(held: &Held) {
    let mut wait = REFRESH_EVERY;
    loop {
        {
            let stop = locked_mutex(&held.stop);
            let (stop, _) = held
                .wake
                .wait_timeout_while(stop, wait, |s| !*s)
                .unwrap_or_else(|p| p.into_inner());
            if *stop {
                return;
            }
        }
        let mut lock = locked_mutex(&held.current).1.clone();
        lock.refreshed = Timestamp::now();
        wait = match held.repo.write_object(ObjectKind::Lock, &lock.encode()) {
            Ok(new_id) => {
                let mut current = locked_mutex(&held.current);
                let old = std::mem::replace(&mut *current, (new_id, lock)).0;
                *locked_mutex(&held.refreshed_at) = Instant::now();
                // A failed delete leaves an extra lock of ours that goes
                // stale on its own.
                let _ = held.repo.remove_lock(&old);
                REFRESH_EVERY
            }
            Err(_) => RETRY_REFRESH,
        };
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        *locked_mutex(&self.held.stop) = true;
        self.held.wake.notify_all();
        if let Some(t) = self.refresher.take() {
            let _ = t.join();
        }
        let id = locked_mutex(&self.held.current).0;
        let _ = self.held.repo.remove_lock(&id);
    }
}
