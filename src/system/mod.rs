//! What vault asks of the machine it runs on: its name, the users and
//! groups behind ids, and the programs it starts.

pub mod interrupt;
mod owners;
pub mod process;

pub use owners::Owners;

/// Stack for every thread that walks trees. Walkers recurse once per folder
/// level (through rayon's parallel iterators for snapshot and copy), and a
/// folder chain thousands of levels deep, which any local user can plant,
/// overflowed default stacks and aborted the run. The reservation is
/// virtual: only the pages a deep walk touches are used.
pub const WALK_STACK: usize = 256 << 20;

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

/// Give the heap memory freed so far back to the system (glibc keeps it
/// for reuse otherwise, and a process whose threads each free buffers in
/// their own arena ends up holding a lot of it). Elsewhere a no-op.
pub fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim only walks the allocator's own free lists.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}

/// Free bytes on the file system holding `path` (for an unprivileged
/// user); `None` when it cannot be asked.
pub fn free_bytes(path: &std::path::Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: all-zero is a valid statvfs.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: c is a valid C string and st a properly sized out-parameter.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    #[allow(clippy::useless_conversion)] // the field types differ by platform
    (rc == 0).then(|| u64::from(st.f_bavail).saturating_mul(u64::from(st.f_frsize)))
}
