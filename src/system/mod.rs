//! What vault asks of the machine it runs on: its name, the users and
//! groups behind ids, and the programs it starts.

pub mod interrupt;
pub mod output;
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

/// Serve allocations of `bytes` and more straight from the system, and give
/// them back as soon as they are freed. glibc otherwise raises that
/// threshold to the largest block freed so far (up to 32 MiB): once one
/// pack buffer has been freed, later ones come from the arenas of the
/// threads that filled them and stay there when freed, with the trimming of
/// those arenas put off to twice the new threshold. A process whose threads
/// each fill and free pack-sized buffers then holds many of them at once.
/// Below the threshold, chunk-sized buffers keep being reused from the
/// arenas without faulting pages in again. Elsewhere a no-op.
pub fn return_large_blocks_from(bytes: usize) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let bytes = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
        // SAFETY: mallopt only sets the allocator's own parameters; glibc
        // refuses values it does not accept (and we have no fallback to
        // offer then).
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, bytes);
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = bytes;
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
