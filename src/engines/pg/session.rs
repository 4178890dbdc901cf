//! One long-lived psql session driven over its standard input: the leader
//! connection of a dump, which must stay open (holding its transaction,
//! exported snapshot and locks) while workers read tables. Each request ends
//! with an `\echo` of a random marker, so we know where its output ends.
//! psql stops at the first error (`ON_ERROR_STOP`), and the error then
//! carries its message.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Stdio};

use super::{psql_command, PgConn};
use crate::error::{Error, ErrorKind, Result};
use crate::system::process::{spawn, wait_success, StderrTail};

pub struct Session {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    stderr: Option<StderrTail>,
    marker: String,
}

impl Session {
    /// Connect to `database` (or the connection's own database).
    pub fn open(conn: &PgConn, database: Option<&str>) -> Result<Session> {
        let mut command = psql_command(conn, database)?;
        command
            .args(["-A", "-t", "-P", "pager=off"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = spawn(&mut command, "psql")?;
        let stderr = StderrTail::hold(&mut child);
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(Error::new(ErrorKind::Io, "psql: no pipes"));
        };
        let mut session = Session {
            child,
            stdin: Some(stdin),
            stdout: BufReader::new(stdout),
            stderr: Some(stderr),
            marker: format!("vault-end-{:016x}", rand::random::<u64>()),
        };
        // Proves the connection works before anything else is started.
        session.query("SET client_encoding TO 'UTF8'")?;
        Ok(session)
    }

    /// Run SQL (one or more statements); the rows of its last result, one
    /// string per row, columns separated by `|`.
    pub fn query(&mut self, sql: &str) -> Result<Vec<String>> {
        let request = format!("{sql};\n\\echo {}\n", self.marker);
        let sent = match &mut self.stdin {
            Some(stdin) => stdin
                .write_all(request.as_bytes())
                .and_then(|()| stdin.flush()),
            None => Err(std::io::ErrorKind::BrokenPipe.into()),
        };
        if sent.is_err() {
            return Err(self.failure());
        }
        let mut rows = Vec::new();
        loop {
            let mut line = String::new();
            match self.stdout.read_line(&mut line) {
                Ok(0) | Err(_) => return Err(self.failure()),
                Ok(_) => {}
            }
            let line = line.trim_end_matches('\n');
            if line == self.marker {
                return Ok(rows);
            }
            if !line.is_empty() {
                rows.push(line.to_string());
            }
        }
    }

    /// Run SQL that returns exactly one value.
    pub fn value(&mut self, sql: &str) -> Result<String> {
        let rows = self.query(sql)?;
        match rows.as_slice() {
            [one] => Ok(one.clone()),
            _ => Err(Error::new(
                ErrorKind::SourceFailed,
                format!("expected one row from the server, got {}", rows.len()),
            )),
        }
    }

    /// Why psql stopped answering: its exit status and last message.
    fn failure(&mut self) -> Error {
        self.stdin.take();
        let stderr = self
            .stderr
            .take()
            .unwrap_or_else(|| StderrTail::hold(&mut self.child));
        match wait_success(&mut self.child, "psql", stderr) {
            Err(e) => e,
            Ok(()) => Error::new(ErrorKind::SourceFailed, "psql ended the session early"),
        }
    }

    /// End the session cleanly (an open transaction is rolled back).
    pub fn close(mut self) -> Result<()> {
        self.stdin.take();
        let stderr = self
            .stderr
            .take()
            .unwrap_or_else(|| StderrTail::hold(&mut self.child));
        wait_success(&mut self.child, "psql", stderr)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if self.stderr.is_some() {
            // Not closed: a failed run. Do not leave a connection behind.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
