//! Run a program and read its standard output as a stream. Its exit status
//! is checked only after the stream ends: a failed producer is not a backup.

use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::error::{Error, ErrorKind, Result};

/// Bytes of a program's standard error kept to explain its failure.
const STDERR_TAIL: usize = 4096;

/// A child's standard error, with the last few KiB kept so an error can
/// quote the program's own reason. Echoed to ours as it arrives, or, for
/// programs vault drives itself (whose failures it explains), held back
/// and shown only if the program succeeds (its warnings).
pub struct StderrTail {
    tail: Arc<Mutex<Vec<u8>>>,
    thread: Option<JoinHandle<()>>,
    echo: bool,
}

impl StderrTail {
    /// Take over `child`'s piped standard error (a child without one keeps
    /// an empty tail).
    pub fn capture(child: &mut Child) -> Self {
        Self::take(child, true)
    }

    /// Like `capture`, without echoing as it arrives.
    pub fn hold(child: &mut Child) -> Self {
        Self::take(child, false)
    }

    fn take(child: &mut Child, echo: bool) -> Self {
        let tail = Arc::new(Mutex::new(Vec::new()));
        let thread = child.stderr.take().map(|mut err| {
            let tail = tail.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = err.read(&mut buf) {
                    if echo {
                        let _ = std::io::stderr().write_all(&buf[..n]);
                    }
                    let mut t = tail.lock().unwrap_or_else(|p| p.into_inner());
                    t.extend_from_slice(&buf[..n]);
                    let excess = t.len().saturating_sub(STDERR_TAIL);
                    t.drain(..excess);
                }
            })
        });
        StderrTail { tail, thread, echo }
    }

    fn join(&mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// After a success: show what a held-back program said.
    fn release(mut self) {
        self.join();
        let tail = self.tail.lock().unwrap_or_else(|p| p.into_inner());
        if !self.echo && !tail.is_empty() {
            let _ = std::io::stderr().write_all(&tail);
        }
    }

    /// The program's own reason, once it has exited: its last error line
    /// (`psql: error: ...`, `ERROR: ...`, `FATAL: ...`), else its last line.
    pub fn reason(mut self) -> Option<String> {
        self.join();
        let tail = self.tail.lock().unwrap_or_else(|p| p.into_inner());
        let text = String::from_utf8_lossy(&tail);
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        let is_error =
            |l: &&&str| l.contains("error:") || l.contains("ERROR:") || l.contains("FATAL:");
        lines
            .iter()
            .rfind(is_error)
            .or(lines.last())
            .map(|l| l.to_string())
    }
}

/// Start `program`; a missing program is the source's failure, not ours.
pub fn spawn(command: &mut Command, name: &str) -> Result<Child> {
    command.spawn().map_err(|e| {
        let kind = if e.kind() == std::io::ErrorKind::NotFound {
            ErrorKind::SourceFailed
        } else {
            ErrorKind::Io
        };
        Error::with_source(kind, format!("cannot start '{name}'"), e)
    })
}

/// Wait for a child; anything but a zero exit is a `SourceFailed` error
/// naming how it ended and, when it said why, its last line of stderr.
pub fn wait_success(child: &mut Child, name: &str, stderr: StderrTail) -> Result<()> {
    let status = child
        .wait()
        .map_err(|e| Error::io(format!("waiting for '{name}'"), e))?;
    if status.success() {
        stderr.release();
        return Ok(());
    }
    let why = stderr.reason();
    use std::os::unix::process::ExitStatusExt;
    let how = match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(sig)) => format!("was killed by signal {sig}"),
        _ => "failed".to_string(),
    };
    let why = why.map(|w| format!(" ({w})")).unwrap_or_default();
    Err(Error::new(
        ErrorKind::SourceFailed,
        format!("'{name}' {how}{why}"),
    ))
}

pub struct CommandSource {
    child: Child,
    program: String,
    stderr: StderrTail,
}

impl CommandSource {
    pub fn spawn(program: &OsString, args: &[OsString]) -> Result<(Self, ChildStdout)> {
        Self::start(program, args, &[], true)
    }

    /// Like `spawn`, with extra environment variables for the program, and
    /// its standard error held back: a failure quotes its reason, a
    /// success shows what it said.
    pub fn spawn_with_env(
        program: &OsStr,
        args: &[OsString],
        env: &[(&str, &str)],
    ) -> Result<(Self, ChildStdout)> {
        Self::start(program, args, env, false)
    }

    fn start(
        program: &OsStr,
        args: &[OsString],
        env: &[(&str, &str)],
        echo: bool,
    ) -> Result<(Self, ChildStdout)> {
        let name = program.to_string_lossy().into_owned();
        let mut command = Command::new(program);
        command
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = spawn(&mut command, &name)?;
        let stderr = if echo {
            StderrTail::capture(&mut child)
        } else {
            StderrTail::hold(&mut child)
        };
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| Error::new(ErrorKind::Io, format!("'{name}': no stdout pipe")))?;
        Ok((
            CommandSource {
                child,
                program: name,
                stderr,
            },
            stdout,
        ))
    }

    /// Wait for the program; anything but a zero exit is an error naming how
    /// it ended.
    pub fn finish(mut self) -> Result<()> {
        wait_success(&mut self.child, &self.program, self.stderr)
            .map_err(|e| Error::new(e.kind(), format!("{e}; no snapshot was recorded")))
    }

    /// Stop the program when the snapshot failed on our side.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A reader that shows every byte it passes on to `observe`.
pub struct Observed<'a, R> {
    inner: R,
    observe: &'a mut (dyn FnMut(&[u8]) + Send),
}

impl<'a, R> Observed<'a, R> {
    pub fn new(inner: R, observe: &'a mut (dyn FnMut(&[u8]) + Send)) -> Self {
        Observed { inner, observe }
    }
}

impl<R: Read> Read for Observed<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        (self.observe)(&buf[..n]);
        Ok(n)
    }
}
