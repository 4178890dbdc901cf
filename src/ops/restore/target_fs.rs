//! The restore target, reached only through directory descriptors.
//!
//! Every name is opened relative to its parent's descriptor and never
//! followed when it is a symlink. A full path string would let a symlink
//! swapped in for a folder on the way (planted, raced, or made by case
//! folding: `A` and `a` are one name on some file systems) redirect the
//! write outside the target; O_NOFOLLOW on the last component alone does
//! not stop that.

use std::ffi::{CStr, CString, OsStr};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

use crate::format::tree::{Entry, EntryKind};

/// What a name in the target is, without following it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    Dir,
    File,
    Symlink,
    /// A device, fifo or socket.
    Other,
}

impl Existing {
    fn of(mode: libc::mode_t) -> Existing {
        match mode & libc::S_IFMT {
            libc::S_IFDIR => Existing::Dir,
            libc::S_IFREG => Existing::File,
            libc::S_IFLNK => Existing::Symlink,
            _ => Existing::Other,
        }
    }
}

pub struct Dir(OwnedFd);

fn cname(name: &OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn open_at(
    dir: libc::c_int,
    name: &CStr,
    flags: libc::c_int,
    mode: libc::c_uint,
) -> io::Result<OwnedFd> {
    // SAFETY: name is NUL-terminated; the returned descriptor is owned here.
    let fd = unsafe { libc::openat(dir, name.as_ptr(), flags | libc::O_CLOEXEC, mode) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just opened and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

const DIR_FLAGS: libc::c_int = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW;

impl Dir {
    /// The target itself: the user named it, so a symlink there is followed.
    pub fn open_target(path: &Path) -> io::Result<Dir> {
        let c = cname(path.as_os_str())?;
        open_at(libc::AT_FDCWD, &c, libc::O_RDONLY | libc::O_DIRECTORY, 0).map(Dir)
    }

    /// A folder directly inside this one; a symlink is refused (ELOOP or
    /// ENOTDIR), never followed.
    pub fn open_dir(&self, name: &OsStr) -> io::Result<Dir> {
        open_at(self.0.as_raw_fd(), &cname(name)?, DIR_FLAGS, 0).map(Dir)
    }

    /// A folder below this one, one component at a time.
    pub fn open_path(&self, rel: &Path) -> io::Result<Dir> {
        let mut dir = self.open_dir(OsStr::new("."))?;
        for component in rel.components() {
            match component {
                Component::Normal(name) => dir = dir.open_dir(name)?,
                Component::CurDir => {}
                _ => return Err(io::Error::from(io::ErrorKind::InvalidInput)),
            }
        }
        Ok(dir)
    }

    pub fn lstat(&self, name: &OsStr) -> io::Result<Option<Existing>> {
        let c = cname(name)?;
        // SAFETY: an all-zero stat is a valid value to be overwritten.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: c is NUL-terminated and st is a valid out pointer.
        let rc = unsafe {
            libc::fstatat(
                self.0.as_raw_fd(),
                c.as_ptr(),
                &mut st,
                libc::AT_SYMLINK_NOFOLLOW,
            )
        };
        match check(rc) {
            Ok(()) => Ok(Some(Existing::of(st.st_mode))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The folder `name`, created if missing; a non-folder in the way
    /// (a symlink included) is removed first.
    pub fn ensure_dir(&self, name: &OsStr) -> io::Result<Dir> {
        let c = cname(name)?;
        for _ in 0..3 {
            // SAFETY: c is NUL-terminated.
            match check(unsafe { libc::mkdirat(self.0.as_raw_fd(), c.as_ptr(), 0o700) }) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
            match self.open_dir(name) {
                Ok(dir) => return Ok(dir),
                Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR)) => {
                    self.unlink(name, false)?;
                }
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::other("it keeps being replaced while restoring"))
    }

    /// Removes `name` if present: a file, symlink or node, or an empty folder.
    pub fn clear(&self, name: &OsStr) -> io::Result<()> {
        match self.lstat(name)? {
            None => Ok(()),
            Some(kind) => self.unlink(name, kind == Existing::Dir),
        }
    }

    fn unlink(&self, name: &OsStr, dir: bool) -> io::Result<()> {
        let c = cname(name)?;
        let flags = if dir { libc::AT_REMOVEDIR } else { 0 };
        // SAFETY: c is NUL-terminated.
        match check(unsafe { libc::unlinkat(self.0.as_raw_fd(), c.as_ptr(), flags) }) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    /// A new file; fails if anything (a symlink included) holds the name.
    pub fn create_file(&self, name: &OsStr) -> io::Result<File> {
        let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW;
        open_at(self.0.as_raw_fd(), &cname(name)?, flags, 0o600).map(File::from)
    }

    pub fn symlink(&self, name: &OsStr, target: &[u8]) -> io::Result<()> {
        let c = cname(name)?;
        let t = CString::new(target).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: both strings are NUL-terminated.
        check(unsafe { libc::symlinkat(t.as_ptr(), self.0.as_raw_fd(), c.as_ptr()) })
    }

    pub fn mknod(&self, name: &OsStr, kind: EntryKind, rdev: u64) -> io::Result<()> {
        let c = cname(name)?;
        let kind = match kind {
            EntryKind::Fifo => libc::S_IFIFO,
            EntryKind::CharDevice => libc::S_IFCHR,
            _ => libc::S_IFBLK,
        };
        // SAFETY: c is NUL-terminated.
        check(unsafe {
            libc::mknodat(
                self.0.as_raw_fd(),
                c.as_ptr(),
                kind | 0o600,
                rdev as libc::dev_t,
            )
        })
    }

    /// Owner, mode and times of this folder itself.
    pub fn set_own_metadata(&self, entry: &Entry) -> io::Result<()> {
        set_fd_metadata(self.0.as_raw_fd(), entry)
    }

    /// Owner, mode and times of `name`, which restore just made. A symlink
    /// is never followed; a device or fifo is pinned by an O_PATH
    /// descriptor so a swap cannot redirect the change.
    pub fn set_metadata(&self, name: &OsStr, entry: &Entry) -> io::Result<()> {
        let c = cname(name)?;
        let dir = self.0.as_raw_fd();
        if entry.kind == EntryKind::Symlink {
            if is_root() {
                // SAFETY: c is NUL-terminated.
                check(unsafe {
                    libc::fchownat(
                        dir,
                        c.as_ptr(),
                        entry.uid,
                        entry.gid,
                        libc::AT_SYMLINK_NOFOLLOW,
                    )
                })?;
            }
            let times = timespecs(entry);
            // SAFETY: c is NUL-terminated and times holds two timespecs.
            return check(unsafe {
                libc::utimensat(dir, c.as_ptr(), times.as_ptr(), libc::AT_SYMLINK_NOFOLLOW)
            });
        }
        let pinned = open_at(dir, &c, libc::O_PATH | libc::O_NOFOLLOW, 0)?;
        // SAFETY: an all-zero stat is a valid value to be overwritten.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: pinned is open and st is a valid out pointer.
        check(unsafe { libc::fstat(pinned.as_raw_fd(), &mut st) })?;
        if Existing::of(st.st_mode) == Existing::Symlink {
            return Err(io::Error::from_raw_os_error(libc::ELOOP));
        }
        // An O_PATH descriptor takes no fchmod; its /proc link names exactly
        // the pinned inode.
        let proc = CString::new(format!("/proc/self/fd/{}", pinned.as_raw_fd()))
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        if is_root() {
            // SAFETY: the empty path with AT_EMPTY_PATH names pinned itself.
            check(unsafe {
                libc::fchownat(
                    pinned.as_raw_fd(),
                    c"".as_ptr(),
                    entry.uid,
                    entry.gid,
                    libc::AT_EMPTY_PATH,
                )
            })?;
        }
        // SAFETY: proc is NUL-terminated.
        check(unsafe { libc::chmod(proc.as_ptr(), (entry.mode & 0o7777) as libc::mode_t) })?;
        let times = timespecs(entry);
        // SAFETY: proc is NUL-terminated and times holds two timespecs.
        check(unsafe { libc::utimensat(libc::AT_FDCWD, proc.as_ptr(), times.as_ptr(), 0) })
    }
}

/// Owner, mode and times through an open descriptor (a file or folder).
pub fn set_fd_metadata(fd: libc::c_int, entry: &Entry) -> io::Result<()> {
    if is_root() {
        // SAFETY: fd is an open descriptor.
        check(unsafe { libc::fchown(fd, entry.uid, entry.gid) })?;
    }
    // SAFETY: fd is an open descriptor.
    check(unsafe { libc::fchmod(fd, (entry.mode & 0o7777) as libc::mode_t) })?;
    let times = timespecs(entry);
    // SAFETY: fd is open and times holds two timespecs.
    check(unsafe { libc::futimens(fd, times.as_ptr()) })
}

pub fn set_file_metadata(file: &File, entry: &Entry) -> io::Result<()> {
    set_fd_metadata(file.as_raw_fd(), entry)
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn timespecs(entry: &Entry) -> [libc::timespec; 2] {
    let t = libc::timespec {
        tv_sec: entry.mtime.secs as libc::time_t,
        tv_nsec: entry.mtime.nanos as libc::c_long,
    };
    [t, t]
}
