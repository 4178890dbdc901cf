//! A vault process fed on stdin and held mid-run: crash tests kill it
//! there, prune tests run beside it.

use std::io::{self, Read};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;

use super::Vault;

/// A vault process reading `data` on stdin, held after `first` bytes until
/// the returned sender is used or dropped: it is certainly mid-run (and
/// holding its lock) while held.
pub struct Held {
    child: Option<Child>,
    release: Option<mpsc::Sender<()>>,
    feeder: Option<JoinHandle<()>>,
}

impl Held {
    pub fn start<S: AsRef<std::ffi::OsStr>>(
        v: &Vault,
        args: &[S],
        mut data: impl Read + Send + 'static,
        first: u64,
    ) -> Self {
        let mut child = v
            .cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn vault");
        let mut stdin = child.stdin.take().unwrap();
        let (release, released) = mpsc::channel::<()>();
        let feeder = std::thread::spawn(move || {
            if io::copy(&mut (&mut data).take(first), &mut stdin).is_err() {
                return;
            }
            let _ = released.recv();
            let _ = io::copy(&mut data, &mut stdin);
        });
        Held {
            child: Some(child),
            release: Some(release),
            feeder: Some(feeder),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    fn release(&mut self) {
        drop(self.release.take());
        if let Some(f) = self.feeder.take() {
            f.join().unwrap();
        }
    }

    /// Let the rest of the input through and wait for the process.
    pub fn finish(mut self) -> std::process::Output {
        let child = self.child.take().unwrap();
        drop(self.release.take());
        let out = child.wait_with_output().unwrap();
        self.release();
        out
    }

    /// How the process ended, if it has.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().unwrap())
    }

    /// SIGKILL, wherever the process is; how it ended (it may have finished
    /// just before).
    pub fn kill9(mut self) -> ExitStatus {
        let mut child = self.child.take().unwrap();
        let _ = child.kill();
        let status = child.wait().unwrap();
        self.release();
        status
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        // A failing test must not leave a vault writing into its scratch dir.
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        drop(self.release.take());
    }
}
