use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use serde_json::json;
use vault::mount::{mount, MountOptions};

use super::{open, print_json};
use crate::cli::args::Global;
use crate::cli::exit;

#[derive(Args, Debug)]
pub struct MountArgs {
    /// Empty folder to mount the repository on
    pub mountpoint: PathBuf,
    /// Seconds between looks for new snapshots
    #[arg(long, default_value_t = 5)]
    pub refresh_secs: u64,
    /// Let other users see the mount (needs user_allow_other in
    /// /etc/fuse.conf unless run as root)
    #[arg(long)]
    pub allow_other: bool,
    /// With --allow-other, let every user read every file regardless of
    /// the permissions the snapshot recorded (the kernel checks them
    /// otherwise)
    #[arg(long, requires = "allow_other")]
    pub no_default_permissions: bool,
}

const STOP_SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

fn stop_signal_set() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset fill a sigset_t we own.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in STOP_SIGNALS {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

/// Block the stop signals in this thread, so every thread started from
/// now on inherits the block and only `wait_for_stop` receives them: an
/// unhandled SIGTERM would end the process without unmounting, leaving a
/// dead mount behind.
pub(crate) fn block_stop_signals() {
    let set = stop_signal_set();
    // SAFETY: set is a valid sigset_t; a null old set is allowed.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
}

/// Wait for Ctrl-C, SIGTERM or SIGHUP, or for `done` to turn true.
fn wait_for_stop(done: impl Fn() -> bool) -> Option<libc::c_int> {
    let set = stop_signal_set();
    let timeout = libc::timespec {
        tv_sec: 0,
        tv_nsec: 200_000_000,
    };
    loop {
        // SAFETY: set and timeout are valid; no siginfo is asked for.
        let sig = unsafe { libc::sigtimedwait(&set, std::ptr::null_mut(), &timeout) };
        if sig > 0 {
            return Some(sig);
        }
        if done() {
            return None;
        }
    }
}

pub(super) fn mount_cmd(g: &Global, a: MountArgs) -> Result<i32> {
    block_stop_signals();
    let repo = open(g)?;
    let opts = MountOptions {
        refresh: Duration::from_secs(a.refresh_secs),
        allow_other: a.allow_other,
        no_default_permissions: a.no_default_permissions,
        ..MountOptions::default()
    };
    let mounted = mount(repo, &a.mountpoint, &opts)?;
    if !g.quiet {
        eprintln!(
            "mounted the repository at {}; Ctrl-C (or `fusermount3 -u {}`) unmounts",
            a.mountpoint.display(),
            a.mountpoint.display()
        );
    }
    let signal = wait_for_stop(|| mounted.is_finished());
    let stats = mounted.stats();
    mounted.unmount()?;
    if g.json {
        print_json(&json!({
            "mountpoint": a.mountpoint.to_string_lossy(),
            "stopped_by": if signal.is_some() { "signal" } else { "unmount" },
            "stats": stats.to_json(),
        }))?;
    } else if !g.quiet {
        match signal {
            Some(_) => eprintln!("unmounted {}", a.mountpoint.display()),
            None => eprintln!("{} was unmounted", a.mountpoint.display()),
        }
    }
    Ok(exit::OK)
}
