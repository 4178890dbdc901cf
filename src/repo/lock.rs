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
//! stale while its holder still relies on it. A lock that went longer than
//! that without a refresh, or whose object vanished, is lost for good: a
//! later refresh cannot undo what others did while it looked gone.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rand::Rng;

use super::{ObjectKind, Repository};
use crate::error::{Error, ErrorKind, Result};
use crate::format::lock::{Lock, LockMode};
use crate::format::{Id, Timestamp};
use crate::system::{hostname, username};

/// How often a holder rewrites its lock.
pub const REFRESH_EVERY: Duration = Duration::from_secs(5 * 60);
/// A lock not refreshed for this long belongs to a holder that is gone.
pub const STALE_AFTER: Duration = Duration::from_secs(30 * 60);
/// How long after its last refresh a holder still relies on its lock. The
/// gap to `STALE_AFTER` is the margin for one commit or deletion step and
/// for clocks that disagree a little.
const TRUSTED_FOR: Duration = Duration::from_secs(15 * 60);
/// Deletions between checks of the lock within one deleting step
/// (format-spec "Locks").
pub const DELETES_PER_LOCK_CHECK: usize = 64;
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
    fn lock_wait(&self) -> Duration {
        self.lock_wait
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
        loop {
            let mut blocker = self.conflict(mode, None)?;
            if blocker.is_none() {
                // Stamped at each attempt: a lock written after a long wait
                // must not look old, to others or to ourselves.
                let taken = SystemClock.now();
                let mine = Lock {
                    mode,
                    host: hostname(),
                    user: username(),
                    pid: std::process::id(),
                    purpose: purpose.to_string(),
                    created: taken.stamp(),
                    refreshed: taken.stamp(),
                };
                let id = self.write_object(ObjectKind::Lock, &mine.encode())?;
                // Looking again after writing is what makes racing takers
                // safe: whichever of two writes came last sees the other.
                match self.conflict(mode, Some(&id)) {
                    Ok(None) => {
                        self.lock_lost.store(false, Ordering::Relaxed);
                        let guard = LockGuard::start(self.clone(), id, mine, taken);
                        // Whatever ran before we held the lock (a prune) may
                        // have replaced index objects the cache still lists.
                        if self.index_view == super::IndexView::Effective {
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

/// A reading of the two clocks that bound how long a holder went without
/// refreshing: the wall clock, which others judge staleness by, and the
/// boot clock, which keeps counting while the machine sleeps (`Instant`
/// stops, so a laptop suspended mid-backup would never notice).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Moment {
    pub wall: Duration,
    pub boot: Duration,
}

impl Moment {
    /// The longer of the two gaps since `earlier`: a wall clock set back or
    /// a boot clock that missed time must not hide a gap the other saw.
    fn since(self, earlier: Moment) -> Duration {
        let wall = self.wall.saturating_sub(earlier.wall);
        let boot = self.boot.saturating_sub(earlier.boot);
        wall.max(boot)
    }

    fn stamp(self) -> Timestamp {
        Timestamp {
            secs: self.wall.as_secs() as i64,
            nanos: self.wall.subsec_nanos(),
        }
    }
}

pub(crate) trait Clock: Send + Sync {
    fn now(&self) -> Moment;
}

struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Moment {
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Moment {
            wall,
            boot: boot_clock(),
        }
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
const BOOT_CLOCK: libc::clockid_t = libc::CLOCK_BOOTTIME;
// Elsewhere the monotonic clock is the closest; the wall clock still
// counts a suspend.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const BOOT_CLOCK: libc::clockid_t = libc::CLOCK_MONOTONIC;

fn boot_clock() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for the call to fill in.
    if unsafe { libc::clock_gettime(BOOT_CLOCK, &mut ts) } != 0 {
        return Duration::ZERO;
    }
    Duration::new(
        ts.tv_sec.max(0) as u64,
        ts.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

/// Why a holder went too long without refreshing, if it did. Pure, so the
/// rule can be tested with made-up clocks.
pub(crate) fn overdue(last_refresh: Moment, now: Moment) -> Option<String> {
    let gap = now.since(last_refresh);
    (gap > TRUSTED_FOR).then(|| {
        format!(
            "our lock went {}s without a refresh (longer than {}s, a suspend or a storage outage?); others may have taken it for stale, so stopping",
            gap.as_secs(),
            TRUSTED_FOR.as_secs()
        )
    })
}

struct Held {
    repo: Arc<Repository>,
    clock: Box<dyn Clock>,
    /// The lock object's current name and content.
    current: Mutex<(Id, Lock)>,
    /// When the current object's `refreshed` time was taken.
    refreshed_at: Mutex<Moment>,
    /// Set once the lock is lost, and never cleared: a new lock object
    /// cannot undo what others did while the old one looked stale or gone.
    lost: Mutex<Option<String>>,
    stop: Mutex<bool>,
    wake: Condvar,
}

fn locked_mutex<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Held {
    fn lose(&self, why: String) -> Error {
        self.repo.lock_lost.store(true, Ordering::Relaxed);
        let mut lost = locked_mutex(&self.lost);
        let why = lost.get_or_insert(why).clone();
        locked(why)
    }

    /// Fails, for good, once the lock went too long without a refresh.
    fn trust(&self) -> Result<()> {
        if let Some(why) = locked_mutex(&self.lost).clone() {
            return Err(locked(why));
        }
        let last = *locked_mutex(&self.refreshed_at);
        match overdue(last, self.clock.now()) {
            Some(why) => Err(self.lose(why)),
            None => Ok(()),
        }
    }

    fn gone(&self, id: &Id) -> Error {
        self.lose(format!(
            "our lock {} was removed by another process (vault unlock --all?), so stopping",
            id.short()
        ))
    }

    /// Write a new lock object, then make sure the previous one was still
    /// there and fresh all along before deleting it. Returns whether to
    /// carry on refreshing (`Err` once the lock is lost).
    fn refresh(&self) -> Result<()> {
        self.trust()?;
        let taken = self.clock.now();
        let mut lock = locked_mutex(&self.current).1.clone();
        lock.refreshed = taken.stamp();
        let new_id = self.repo.write_object(ObjectKind::Lock, &lock.encode())?;
        let mut current = locked_mutex(&self.current);
        let old = std::mem::replace(&mut *current, (new_id, lock)).0;
        // The old object must have outlived the write: had it vanished or
        // gone stale first, a prune may have started in between. Checked
        // after the write, so a removal from now on leaves the new one.
        self.trust()?;
        if !self.repo.backend().exists(&ObjectKind::Lock.path(&old))? {
            return Err(self.gone(&old));
        }
        *locked_mutex(&self.refreshed_at) = taken;
        drop(current);
        // A failed delete leaves an extra lock of ours that goes stale on
        // its own.
        let _ = self.repo.remove_lock(&old);
        Ok(())
    }
}

/// A held lock: refreshed in the background, removed when dropped.
pub struct LockGuard {
    held: Arc<Held>,
    refresher: Option<JoinHandle<()>>,
}

impl LockGuard {
    fn start(repo: Arc<Repository>, id: Id, lock: Lock, taken: Moment) -> Self {
        let mut guard = Self::unrefreshed(repo, id, lock, Box::new(SystemClock), taken);
        let held = guard.held.clone();
        guard.refresher = std::thread::Builder::new()
            .name("vault-lock".into())
            .spawn(move || refresh_loop(&held))
            .ok();
        guard
    }

    fn unrefreshed(
        repo: Arc<Repository>,
        id: Id,
        lock: Lock,
        clock: Box<dyn Clock>,
        taken: Moment,
    ) -> Self {
        LockGuard {
            held: Arc::new(Held {
                repo,
                clock,
                current: Mutex::new((id, lock)),
                refreshed_at: Mutex::new(taken),
                lost: Mutex::new(None),
                stop: Mutex::new(false),
                wake: Condvar::new(),
            }),
            refresher: None,
        }
    }

    pub fn id(&self) -> Id {
        locked_mutex(&self.held.current).0
    }

    /// Fails unless the lock is still ours and fresh: call it before every
    /// step that commits or deletes. A lock that went too long without a
    /// refresh, or whose object vanished, is lost for good, even if a later
    /// refresh succeeds: others may have acted on it meanwhile.
    pub fn check(&self) -> Result<()> {
        self.held.trust()?;
        // Held across the check so a refresh cannot swap names under it.
        let current = locked_mutex(&self.held.current);
        let path = ObjectKind::Lock.path(&current.0);
        if !self.held.repo.backend().exists(&path)? {
            return Err(self.held.gone(&current.0));
        }
        Ok(())
    }
}

impl LockGuard {
    /// `check` before the first of a run of deletions and every
    /// `DELETES_PER_LOCK_CHECK` after it; `done` counts those already made.
    pub fn check_before_delete(&self, done: usize) -> Result<()> {
        if done.is_multiple_of(DELETES_PER_LOCK_CHECK) {
            self.check()?;
        }
        Ok(())
    }
}

/// `REFRESH_EVERY`, or more often if `VAULT_LOCK_REFRESH_SECS` asks (for
/// storage that is slow to list, and for tests); never less often.
fn refresh_every() -> Duration {
    std::env::var("VAULT_LOCK_REFRESH_SECS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .map_or(REFRESH_EVERY, |s| {
            Duration::from_secs(s.max(1)).min(REFRESH_EVERY)
        })
}

fn refresh_loop(held: &Held) {
    let every = refresh_every();
    let mut wait = every;
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
        wait = match held.refresh() {
            Ok(()) => every,
            // Lost: `check` reports it; refreshing cannot bring it back.
            Err(e) if e.kind() == ErrorKind::Locked => return,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A clock the test moves by hand, shared with the guard it drives.
    #[derive(Clone)]
    struct Manual(Arc<Mutex<Moment>>);

    impl Clock for Manual {
        fn now(&self) -> Moment {
            *locked_mutex(&self.0)
        }
    }

    impl Manual {
        fn pass(&self, wall: Duration, boot: Duration) {
            let mut m = locked_mutex(&self.0);
            m.wall += wall;
            m.boot += boot;
        }
    }

    const MIN: Duration = Duration::from_secs(60);

    fn repo() -> Arc<Repository> {
        crate::repo::in_memory()
    }

    /// A guard over a freshly written lock whose clock the test controls;
    /// no background refresher, the test refreshes by hand.
    fn held(repo: &Arc<Repository>) -> (LockGuard, Manual) {
        let clock = Manual(Arc::new(Mutex::new(Moment {
            wall: Duration::from_secs(1_800_000_000),
            boot: Duration::from_secs(1000),
        })));
        let start = clock.now();
        let lock = Lock {
            mode: LockMode::Shared,
            host: "h".into(),
            user: "u".into(),
            pid: 1,
            purpose: "snapshot".into(),
            created: start.stamp(),
            refreshed: start.stamp(),
        };
        let id = repo.write_object(ObjectKind::Lock, &lock.encode()).unwrap();
        let guard = LockGuard::unrefreshed(repo.clone(), id, lock, Box::new(clock.clone()), start);
        (guard, clock)
    }

    fn is_lost(r: Result<()>) -> bool {
        matches!(r, Err(e) if e.kind() == ErrorKind::Locked)
    }

    #[test]
    fn regular_refreshes_keep_the_lock() {
        let repo = repo();
        let (guard, clock) = held(&repo);
        for _ in 0..10 {
            clock.pass(REFRESH_EVERY, REFRESH_EVERY);
            guard.held.refresh().unwrap();
            guard.check().unwrap();
        }
        assert_eq!(
            repo.list_objects(ObjectKind::Lock).unwrap(),
            vec![guard.id()]
        );
    }

    #[test]
    fn a_suspend_only_the_boot_clock_saw_loses_the_lock_for_good() {
        let repo = repo();
        let (guard, clock) = held(&repo);
        // The wall clock was set back while the machine slept.
        clock.pass(Duration::ZERO, 31 * MIN);
        assert!(is_lost(guard.held.refresh()));
        // A later refresh that succeeds does not make it ours again.
        clock.pass(MIN, MIN);
        assert!(is_lost(guard.held.refresh()));
        assert!(is_lost(guard.check()));
    }

    #[test]
    fn a_gap_only_the_wall_clock_saw_loses_the_lock_for_good() {
        let repo = repo();
        let (guard, clock) = held(&repo);
        clock.pass(16 * MIN, MIN);
        assert!(is_lost(guard.check()));
        clock.pass(Duration::ZERO, Duration::ZERO);
        assert!(is_lost(guard.held.refresh()));
        assert!(is_lost(guard.check()));
    }

    #[test]
    fn a_removed_lock_is_lost_for_good_even_after_a_refresh_writes_a_new_one() {
        let repo = repo();
        let (guard, clock) = held(&repo);
        // `vault unlock --all`.
        repo.remove_lock(&guard.id()).unwrap();
        clock.pass(REFRESH_EVERY, REFRESH_EVERY);
        assert!(is_lost(guard.held.refresh()));
        assert!(repo
            .backend()
            .exists(&ObjectKind::Lock.path(&guard.id()))
            .unwrap());
        assert!(is_lost(guard.check()));
    }

    #[test]
    fn overdue_takes_the_longer_of_the_two_clocks() {
        let t = |wall: u64, boot: u64| Moment {
            wall: Duration::from_secs(wall),
            boot: Duration::from_secs(boot),
        };
        let limit = TRUSTED_FOR.as_secs();
        assert!(overdue(t(100, 100), t(100 + limit, 100 + limit)).is_none());
        assert!(overdue(t(100, 100), t(101 + limit, 100)).is_some());
        assert!(overdue(t(100, 100), t(100, 101 + limit)).is_some());
        // A wall clock stepped back hides nothing the boot clock saw.
        assert!(overdue(t(5000, 100), t(10, 101 + limit)).is_some());
    }
}
