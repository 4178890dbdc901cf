//! Standard output as a file vault may write at offsets.

use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::os::fd::{AsFd, AsRawFd};

/// Standard output when it is a regular file that positional writes can
/// fill (`vault dump … > file`), with the offset writing starts at: then
/// the decoding threads write each chunk where it belongs, in parallel,
/// instead of handing every byte to one thread that writes them in order.
/// `None` for pipes, terminals and files opened for appending, where
/// positional writes would not land where a sequential write does.
pub fn positional_stdout() -> Option<StdoutFile> {
    let mut file = File::from(std::io::stdout().as_fd().try_clone_to_owned().ok()?);
    if !file.metadata().ok()?.file_type().is_file() {
        return None;
    }
    // SAFETY: F_GETFL on an open descriptor only reads its flags.
    let flags = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETFL) };
    if flags < 0 || flags & libc::O_APPEND != 0 {
        return None;
    }
    let start = file.stream_position().ok()?;
    Some(StdoutFile { file, start })
}

/// A duplicate of standard output's descriptor: it shares the offset,
/// which `finish` moves past what was written, as a sequential write would.
pub struct StdoutFile {
    pub file: File,
    pub start: u64,
}

impl StdoutFile {
    pub fn finish(mut self, written: u64) -> std::io::Result<()> {
        self.file.seek(SeekFrom::Start(self.start + written))?;
        Ok(())
    }
}
