//! Run a program and read its standard output as a stream (a producer) or
//! feed its standard input (a database client restoring a dump). Its exit
//! status is checked only after the stream ends: a failed producer is not a
//! backup.

use std::io::{Read, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::error::{Error, ErrorKind, Result};

/// What becomes of a program's standard error. In every case its last few
/// KiB are kept, so a failure can quote the program's own reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stderr {
    /// Shown as it arrives (a command the user named).
    Inherit,
    /// Dropped if the program succeeds: database clients chatter on stderr
    /// even when all goes well.
    Capture,
    /// Shown only after a success (the warnings of a program vault drives
    /// itself and whose failures it explains).
    Hold,
}

/// Bytes of a program's standard error kept to explain its failure.
const STDERR_TAIL: usize = 16 << 10;

/// A child's standard error, read on a thread of its own so the child never
/// blocks on a full pipe.
pub struct StderrTail {
    tail: Arc<Mutex<Vec<u8>>>,
    thread: Option<JoinHandle<()>>,
    mode: Stderr,
}

impl StderrTail {
    /// Take over `child`'s piped standard error (a child without one keeps
    /// an empty tail).
    pub fn take(child: &mut Child, mode: Stderr) -> Self {
        let tail = Arc::new(Mutex::new(Vec::new()));
        let thread = child.stderr.take().map(|mut err| {
            let tail = tail.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                loop {
                    let n = match err.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        Err(_) => break,
                    };
                    if mode == Stderr::Inherit {
                        let _ = std::io::stderr().write_all(&buf[..n]);
                    }
                    let mut t = tail.lock().unwrap_or_else(|p| p.into_inner());
                    t.extend_from_slice(&buf[..n]);
                    let excess = t.len().saturating_sub(STDERR_TAIL);
                    t.drain(..excess);
                }
            })
        });
        StderrTail { tail, thread, mode }
    }

    pub fn hold(child: &mut Child) -> Self {
        Self::take(child, Stderr::Hold)
    }

    fn finish(mut self) -> Vec<u8> {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        std::mem::take(&mut *self.tail.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// After a success: show what a held-back program said; return its
    /// last line (some clients report refusals there and still exit 0).
    fn release(self) -> String {
        let hold = self.mode == Stderr::Hold;
        let tail = self.finish();
        if hold && !tail.is_empty() {
            let _ = std::io::stderr().write_all(&tail);
        }
        last_line(&tail)
    }

    /// The program's own reason, once it has exited: its last error line
    /// (`psql: error: ...`, `ERROR: ...`, `FATAL: ...`), else its last line.
    pub fn reason(self) -> Option<String> {
        let tail = self.finish();
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

/// Start a program; a missing program is the source's failure, not ours.
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
/// naming how it ended and, when it said why, its own reason.
pub fn wait_success(child: &mut Child, name: &str, stderr: StderrTail) -> Result<()> {
    wait_for_words(child, name, stderr).map(|_| ())
}

/// `wait_success`, returning the last line of stderr on success.
fn wait_for_words(child: &mut Child, name: &str, stderr: StderrTail) -> Result<String> {
    let status = child
        .wait()
        .map_err(|e| Error::io(format!("waiting for '{name}'"), e))?;
    if status.success() {
        return Ok(stderr.release());
    }
    // The terminal's Ctrl-C reaches the child too: its death is ours.
    crate::system::interrupt::check()?;
    use std::os::unix::process::ExitStatusExt;
    let how = match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(sig)) => format!("was killed by signal {sig}"),
        _ => "failed".to_string(),
    };
    let why = stderr
        .reason()
        .map(|w| format!(" ({w})"))
        .unwrap_or_default();
    Err(Error::new(
        ErrorKind::SourceFailed,
        format!("'{name}' {how}{why}"),
    ))
}

/// A running producer (its stdout is read) or consumer (its stdin is fed).
pub struct CommandSource {
    child: Child,
    program: String,
    stderr: StderrTail,
    /// Appended to a failure: what did not happen because of it.
    consequence: &'static str,
}

impl CommandSource {
    /// Start a prepared command (arguments and environment set by the
    /// caller) with standard input closed and standard output piped.
    pub fn start(cmd: Command, stderr: Stderr) -> Result<(Self, ChildStdout)> {
        let mut source = Self::launch(
            cmd,
            (Stdio::null(), Stdio::piped()),
            stderr,
            "; no snapshot was recorded",
        )?;
        let stdout = source.child.stdout.take().ok_or_else(|| {
            Error::new(
                ErrorKind::Io,
                format!("'{}': no stdout pipe", source.program),
            )
        })?;
        Ok((source, stdout))
    }

    /// Start a prepared command that reads what is written to the returned
    /// pipe; its output is discarded and its stderr captured.
    pub fn start_fed(cmd: Command) -> Result<(Self, ChildStdin)> {
        let mut sink = Self::launch(cmd, (Stdio::piped(), Stdio::null()), Stderr::Capture, "")?;
        let stdin = sink.child.stdin.take().ok_or_else(|| {
            Error::new(ErrorKind::Io, format!("'{}': no stdin pipe", sink.program))
        })?;
        Ok((sink, stdin))
    }

    fn launch(
        mut cmd: Command,
        (stdin, stdout): (Stdio, Stdio),
        stderr: Stderr,
        consequence: &'static str,
    ) -> Result<Self> {
        let name = cmd.get_program().to_string_lossy().into_owned();
        cmd.stdin(stdin).stdout(stdout).stderr(Stdio::piped());
        let mut child = spawn(&mut cmd, &name)?;
        let stderr = StderrTail::take(&mut child, stderr);
        Ok(CommandSource {
            child,
            program: name,
            stderr,
            consequence,
        })
    }

    /// Wait for the program; anything but a zero exit is an error naming how
    /// it ended.
    pub fn finish(self) -> Result<()> {
        self.finish_with_last_words().map(|_| ())
    }

    /// `finish`, returning the last line of stderr on success.
    fn finish_with_last_words(mut self) -> Result<String> {
        let consequence = self.consequence;
        wait_for_words(&mut self.child, &self.program, self.stderr)
            .map_err(|e| Error::new(e.kind(), format!("{e}{consequence}")))
    }

    /// Stop the program when the snapshot failed on our side.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stderr.finish();
    }
}

/// Run a prepared command to the end; returns its standard output and the
/// last line of its stderr (some clients report refusals there and still
/// exit 0). A failure is a `SourceFailed` error quoting the program's last
/// words. For the short queries a dump starts with (versions, database
/// lists).
pub fn query(cmd: Command) -> Result<(Vec<u8>, String)> {
    let (child, mut stdout) = CommandSource::start(cmd, Stderr::Capture)?;
    let mut out = Vec::new();
    let read = stdout.read_to_end(&mut out);
    let program = child.program.clone();
    let said = child.finish_with_last_words()?;
    read.map_err(|e| Error::io(format!("reading the output of '{program}'"), e))?;
    Ok((out, said))
}

/// The last non-blank line of a program's stderr, trimmed.
pub fn last_line(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or_default()
        .to_string()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_line_skips_trailing_blank_lines() {
        assert_eq!(last_line(b"one\n  two  \n\n \n"), "two");
        assert_eq!(last_line(b""), "");
        assert_eq!(last_line(b"only"), "only");
    }

    #[test]
    fn failed_query_quotes_stderr_and_is_a_source_failure() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo chatter >&2; echo 'access denied' >&2; exit 3"]);
        let err = query(cmd).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::SourceFailed);
        assert!(err.to_string().contains("exited with status 3"), "{err}");
        assert!(err.to_string().contains("(access denied)"), "{err}");
    }

    #[test]
    fn query_returns_stdout() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo hello; echo noise >&2"]);
        assert_eq!(
            query(cmd).unwrap(),
            (b"hello\n".to_vec(), "noise".to_string())
        );
    }
}
