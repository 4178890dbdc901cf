//! A `vault mount` running in a child process for the length of a test.
//! Dropping it (also when an assertion failed) stops the process and makes
//! sure nothing stays mounted.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::Vault;

/// Whether FUSE mounts can work here. When they cannot, a test skips with a
/// loud message, unless VAULT_REQUIRE_SERVICES=1 says it must not.
pub fn fuse_available(test: &str) -> bool {
    let root = super::is_root();
    let helper = std::process::Command::new("fusermount3")
        .arg("-V")
        .output()
        .is_ok();
    let ok = Path::new("/dev/fuse").exists() && (root || helper);
    if !ok {
        assert!(
            std::env::var("VAULT_REQUIRE_SERVICES").as_deref() != Ok("1"),
            "{test}: FUSE is not available (/dev/fuse, root or fusermount3) \
             and VAULT_REQUIRE_SERVICES=1"
        );
        eprintln!(
            "SKIPPED {test}: FUSE is not available (no /dev/fuse, or neither root nor fusermount3)"
        );
    }
    ok
}

/// Is `path` a mount point right now (per /proc/self/mountinfo)?
pub fn is_mounted(path: &Path) -> bool {
    let want = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let info = std::fs::read("/proc/self/mountinfo").unwrap_or_default();
    info.split(|&b| b == b'\n').any(|line| {
        line.split(|&b| b == b' ')
            .nth(4)
            .is_some_and(|mp| mp == want.as_os_str().as_bytes())
    })
}

pub struct Mount {
    child: Option<Child>,
    pub dir: PathBuf,
    log: PathBuf,
}

const MOUNT_WAIT: Duration = Duration::from_secs(60);

impl Mount {
    /// `vault mount DIR --refresh-secs 1 EXTRA...`, waited for until the
    /// mount is live.
    pub fn start(v: &Vault, dir: &Path, extra: &[&str]) -> Mount {
        let log = v.path().join(format!(
            "mount-{}.log",
            dir.file_name().unwrap().to_string_lossy()
        ));
        let mut args: Vec<OsString> = vec![
            "mount".into(),
            dir.into(),
            "--refresh-secs".into(),
            "1".into(),
        ];
        args.extend(extra.iter().map(OsString::from));
        let child = v
            .cmd(&args)
            .stdout(std::fs::File::create(log.with_extension("out")).unwrap())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn vault mount");
        let mut m = Mount {
            child: Some(child),
            dir: dir.to_path_buf(),
            log,
        };
        let deadline = Instant::now() + MOUNT_WAIT;
        while !is_mounted(dir) {
            if let Some(status) = m.child.as_mut().unwrap().try_wait().unwrap() {
                m.child = None;
                panic!("vault mount exited early ({status}): {}", m.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "not mounted after {MOUNT_WAIT:?}: {}",
                m.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        m
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("mount process").id()
    }

    /// The mount's counters (chunks fetched, trees loaded, ...), read from
    /// the extended attribute on its root.
    pub fn stats(&self) -> Value {
        let path = std::ffi::CString::new(self.dir.as_os_str().as_bytes()).unwrap();
        let name = c"user.vault.stats";
        let mut buf = vec![0u8; 4096];
        // SAFETY: path and name are NUL-terminated; buf has buf.len() bytes.
        let n = unsafe {
            libc::getxattr(
                path.as_ptr(),
                name.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        assert!(n >= 0, "getxattr: {}", std::io::Error::last_os_error());
        serde_json::from_slice(&buf[..n as usize]).expect("stats are JSON")
    }

    pub fn stat(&self, key: &str) -> u64 {
        let s = self.stats();
        s[key].as_u64().unwrap_or_else(|| panic!("no {key} in {s}"))
    }

    /// SIGTERM, then wait for the process to end; returns its status after
    /// checking that nothing stays mounted.
    pub fn stop(self) -> ExitStatus {
        self.stop_with_output().0
    }

    /// Like `stop`, also returning what the process wrote on stdout.
    pub fn stop_with_output(mut self) -> (ExitStatus, String) {
        let status = self.terminate();
        assert!(
            !is_mounted(&self.dir),
            "{} still mounted after vault exited",
            self.dir.display()
        );
        let out = std::fs::read_to_string(self.log.with_extension("out")).unwrap_or_default();
        (status, out)
    }

    fn terminate(&mut self) -> ExitStatus {
        let child = self.child.as_ref().expect("mount process");
        // SAFETY: kill has no memory preconditions; the child is not reaped.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        self.wait_for_exit()
    }

    /// Wait (up to 30 s) for the process to end by itself, e.g. after an
    /// outside unmount.
    pub fn wait_for_exit(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("mount process");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let status = child.wait().unwrap();
                panic!(
                    "vault mount ignored SIGTERM for 30 s ({status}): {}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: as in terminate.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(10);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        if is_mounted(&self.dir) {
            let _ = std::process::Command::new("fusermount3")
                .arg("-u")
                .arg("-z")
                .arg(&self.dir)
                .status();
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.dir)
                .status();
        }
    }
}
