//! What produces the bytes a snapshot stores: file trees, standard input,
//! the output of a command. Database sources build on the stream sources.

pub mod command;
pub mod files;
pub mod mysql;
mod owners;
pub mod pg;
pub mod redis;
pub mod sqlite;

pub use owners::Owners;

/// This machine's name, as snapshots record it by default.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown".into();
    }
    let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..len]).into_owned()
}

/// The name of the user running vault.
pub fn username() -> String {
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    Owners::default().user(uid)
}
