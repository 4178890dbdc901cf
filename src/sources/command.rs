//! Run a program and read its standard output as a stream. Its exit status
//! is checked only after the stream ends: a failed producer is not a backup.

use std::io::Read;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::thread::JoinHandle;

use crate::error::{Error, ErrorKind, Result};

/// What becomes of a producer's standard error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stderr {
    /// Shown to the user as it comes (a command the user named).
    Inherit,
    /// Kept, and its last line quoted if the program fails: database
    /// clients chatter on stderr even when all goes well, and their last
    /// words are what explains a failure.
    Capture,
}

/// How much of a captured stderr is kept (the end of it).
const STDERR_KEPT: usize = 16 << 10;

/// A running producer (its stdout is read) or consumer (its stdin is fed,
/// e.g. a database client restoring a dump).
pub struct CommandSource {
    child: Child,
    program: String,
    stderr: Option<JoinHandle<Vec<u8>>>,
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
        cmd.stdin(stdin).stdout(stdout);
        cmd.stderr(match stderr {
            Stderr::Inherit => Stdio::inherit(),
            Stderr::Capture => Stdio::piped(),
        });
        let mut child = cmd.spawn().map_err(|e| {
            let kind = if e.kind() == std::io::ErrorKind::NotFound {
                ErrorKind::SourceFailed
            } else {
                ErrorKind::Io
            };
            Error::with_source(kind, format!("cannot start '{name}'"), e)
        })?;
        let stderr = child.stderr.take().map(|pipe| {
            std::thread::spawn(move || {
                let mut pipe = pipe;
                keep_tail(&mut pipe, STDERR_KEPT)
            })
        });
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

    /// `finish`, returning the last line of a captured stderr on success.
    fn finish_with_last_words(mut self) -> Result<String> {
        let status = self
            .child
            .wait()
            .map_err(|e| Error::io(format!("waiting for '{}'", self.program), e))?;
        let said = self.stderr.take().map(last_words).unwrap_or_default();
        if status.success() {
            return Ok(said);
        }
        use std::os::unix::process::ExitStatusExt;
        let how = match (status.code(), status.signal()) {
            (Some(code), _) => format!("exited with status {code}"),
            (None, Some(sig)) => format!("was killed by signal {sig}"),
            _ => "failed".to_string(),
        };
        let said = if said.is_empty() {
            said
        } else {
            format!(" ({said})")
        };
        Err(Error::new(
            ErrorKind::SourceFailed,
            format!("'{}' {how}{said}{}", self.program, self.consequence),
        ))
    }

    /// Stop the program when the snapshot failed on our side.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(t) = self.stderr.take() {
            let _ = t.join();
        }
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

/// Read `r` to its end, keeping only the last `keep` bytes.
fn keep_tail(r: &mut impl Read, keep: usize) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                kept.extend_from_slice(&buf[..n]);
                if kept.len() > 2 * keep {
                    kept.drain(..kept.len() - keep);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    if kept.len() > keep {
        kept.drain(..kept.len() - keep);
    }
    kept
}

fn last_words(reader: JoinHandle<Vec<u8>>) -> String {
    reader
        .join()
        .map(|bytes| last_line(&bytes))
        .unwrap_or_default()
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
    fn tail_keeps_the_end() {
        let data: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
        let kept = keep_tail(&mut &data[..], 1000);
        assert_eq!(kept, &data[data.len() - 1000..]);
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
