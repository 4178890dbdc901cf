//! Run a program and read its standard output as a stream. Its exit status
//! is checked only after the stream ends: a failed producer is not a backup.

use std::ffi::OsString;
use std::process::{Child, ChildStdout, Command, Stdio};

use crate::error::{Error, ErrorKind, Result};

pub struct CommandSource {
    child: Child,
    program: String,
}

impl CommandSource {
    pub fn spawn(program: &OsString, args: &[OsString]) -> Result<(Self, ChildStdout)> {
        let name = program.to_string_lossy().into_owned();
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| {
                let kind = if e.kind() == std::io::ErrorKind::NotFound {
                    ErrorKind::SourceFailed
                } else {
                    ErrorKind::Io
                };
                Error::with_source(kind, format!("cannot start '{name}'"), e)
            })?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| Error::new(ErrorKind::Io, format!("'{name}': no stdout pipe")))?;
        Ok((
            CommandSource {
                child,
                program: name,
            },
            stdout,
        ))
    }

    /// Wait for the program; anything but a zero exit is an error naming how
    /// it ended.
    pub fn finish(mut self) -> Result<()> {
        let status = self
            .child
            .wait()
            .map_err(|e| Error::io(format!("waiting for '{}'", self.program), e))?;
        if status.success() {
            return Ok(());
        }
        use std::os::unix::process::ExitStatusExt;
        let how = match (status.code(), status.signal()) {
            (Some(code), _) => format!("exited with status {code}"),
            (None, Some(sig)) => format!("was killed by signal {sig}"),
            _ => "failed".to_string(),
        };
        Err(Error::new(
            ErrorKind::SourceFailed,
            format!("'{}' {how}; no snapshot was recorded", self.program),
        ))
    }

    /// Stop the program when the snapshot failed on our side.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
