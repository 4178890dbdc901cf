//! The library's error type: a kind a caller can branch on, a one-line context
//! naming the object or path involved, and the underlying cause.
//!
//! An error prints its context and its cause (`context: cause`), so a message
//! built from it says everything; `source()` then goes on from the cause's own
//! source, as `std::io::Error` does for the error it wraps. Printing the
//! chain (`error: source: source's source ...`) thus says each thing once.

use std::fmt;

/// What went wrong, coarse enough to map to an exit code.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Local or backend I/O failed (disk full, permission denied, network).
    Io,
    /// An object, snapshot or path that was asked for does not exist.
    NotFound,
    /// The location holds no vault repository.
    NotARepository,
    /// `init` was asked to overwrite an existing repository.
    AlreadyExists,
    /// No key object could be opened with the given password.
    WrongPassword,
    /// Stored bytes do not parse or do not match their name.
    Corrupt,
    /// Authenticated decryption failed: the bytes were altered or swapped.
    Tampered,
    /// The repository uses a format version or feature this build cannot read.
    Unsupported,
    /// The caller passed something unusable (bad option, bad snapshot spec).
    InvalidInput,
    /// A producer of data (a command, a database dump) failed.
    SourceFailed,
    /// Another process holds a lock that conflicts with the one asked for.
    Locked,
    /// Remote storage cannot be reached or keeps failing: no network, the
    /// server down, the bucket missing, retries exhausted.
    Unavailable,
    /// Remote storage refused access: bad credentials or missing permission.
    PermissionDenied,
    /// A disk (the repository's, or a restore's target) is full.
    NoSpace,
    /// A bug in vault, such as a worker thread that panicked: nothing the
    /// caller passed or the repository holds explains it.
    Internal,
    /// Something different is already stored under a name that must hold
    /// one thing only (a WAL file pushed again with other contents).
    Conflict,
    /// A stop signal (Ctrl-C, SIGTERM) ended the run before it was done.
    Interrupted,
}

/// The library error: `kind` for decisions, `context` and `source` for people.
pub struct Error {
    kind: ErrorKind,
    context: String,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: ErrorKind, context: impl Into<String>) -> Self {
        Error {
            kind,
            context: context.into(),
            source: None,
        }
    }

    pub fn with_source(
        kind: ErrorKind,
        context: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        Error {
            kind,
            context: context.into(),
            source: Some(source.into()),
        }
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    pub fn context(&self) -> &str {
        &self.context
    }

    /// The kind of the I/O error at the root of this one, if that is what
    /// it is (`source()` steps past the cause, so ask here).
    pub fn io_kind(&self) -> Option<std::io::ErrorKind> {
        let cause = self.source.as_deref()?;
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        cause.downcast_ref::<Error>()?.io_kind()
    }

    /// Prefix the context with where the error happened (an object, a path).
    pub fn at(mut self, place: impl fmt::Display) -> Self {
        self.context = format!("{place}: {}", self.context);
        self
    }

    pub fn corrupt(context: impl Into<String>) -> Self {
        Error::new(ErrorKind::Corrupt, context)
    }

    pub fn invalid(context: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidInput, context)
    }

    /// A worker thread that panicked (`what` names it): a bug, reported
    /// as such rather than blamed on the caller's input.
    pub fn panicked(what: &str) -> Self {
        Error::new(
            ErrorKind::Internal,
            format!("internal error: {what} panicked (a bug in vault)"),
        )
    }

    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        let kind = match source.kind() {
            std::io::ErrorKind::NotFound => ErrorKind::NotFound,
            std::io::ErrorKind::StorageFull => ErrorKind::NoSpace,
            _ if source.raw_os_error() == Some(libc::ENOSPC) => ErrorKind::NoSpace,
            _ => ErrorKind::Io,
        };
        Error::with_source(kind, context, source)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.context)?;
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {self}", self.kind)
    }
}

impl std::error::Error for Error {
    /// What comes after the cause, which Display has already printed.
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref()?.source()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    fn chain(e: &(dyn std::error::Error + 'static)) -> Vec<String> {
        let mut out = vec![e.to_string()];
        let mut next = e.source();
        while let Some(c) = next {
            out.push(c.to_string());
            next = c.source();
        }
        out
    }

    #[test]
    fn the_chain_says_each_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::BrokenPipe, "pipe closed");
        let inner = Error::io("writing a to standard output", io);
        assert_eq!(
            inner.to_string(),
            "writing a to standard output: pipe closed"
        );
        assert!(inner.source().is_none());
        let outer = Error::with_source(ErrorKind::Io, "dump", inner);
        assert_eq!(
            chain(&outer),
            ["dump: writing a to standard output: pipe closed"]
        );
        assert_eq!(outer.io_kind(), Some(std::io::ErrorKind::BrokenPipe));
        assert_eq!(Error::invalid("x").io_kind(), None);
    }
}
