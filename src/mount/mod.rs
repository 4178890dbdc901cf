//! `vault mount`: the repository as a read-only FUSE file system. The
//! kernel talks to it through /dev/fuse (mounted directly as root, through
//! `fusermount3` otherwise); no libfuse is linked.

mod chunks;
mod fs;
pub mod layout;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use fuser::{MountOption, SessionACL, SessionUnmounter};

pub use fs::STATS_XATTR;

use crate::error::{Error, ErrorKind, Result};
use crate::repo::Repository;

#[derive(Debug, Clone)]
pub struct MountOptions {
    /// How old the snapshot list may be before a look into the made-up
    /// folders reads it again.
    pub refresh: Duration,
    /// Let other users (and root) see the mount.
    pub allow_other: bool,
    /// With `allow_other`, skip the kernel's permission checks: vault checks
    /// none itself, so every user who reaches the mount reads every file.
    pub no_default_permissions: bool,
    /// Threads answering the kernel; reads of different chunks overlap.
    pub threads: usize,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            refresh: Duration::from_secs(5),
            allow_other: false,
            no_default_permissions: false,
            threads: 4,
        }
    }
}

/// What a mount has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MountStats {
    /// Chunks read from the repository (each at most once while cached).
    pub chunks_fetched: u64,
    pub bytes_fetched: u64,
    /// Chunk reads served from the cache or from a fetch already running.
    pub chunk_cache_hits: u64,
    pub trees_loaded: u64,
    /// Read requests from the kernel.
    pub reads: u64,
}

impl MountStats {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "chunks_fetched": self.chunks_fetched,
            "bytes_fetched": self.bytes_fetched,
            "chunk_cache_hits": self.chunk_cache_hits,
            "trees_loaded": self.trees_loaded,
            "reads": self.reads,
        })
    }
}

/// A live mount. Dropping it without `unmount` leaves the unmounting to
/// the end of the process.
pub struct Mounted {
    mountpoint: PathBuf,
    unmounter: SessionUnmounter,
    session: Option<JoinHandle<std::io::Result<()>>>,
    stats: fs::StatsHandle,
}

const DEV_FUSE: &str = "/dev/fuse";

/// Refuse a mount point that cannot work or would hide something: missing,
/// not a folder, already a mount point (busy), or not empty.
fn check_mountpoint(path: &Path) -> Result<()> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| {
        let hint = if e.raw_os_error() == Some(libc::ENOTCONN) {
            format!(" (a dead mount: run `fusermount3 -u {shown}`)")
        } else {
            String::new()
        };
        Error::io(format!("mount point {shown}{hint}"), e)
    })?;
    if !meta.is_dir() {
        return Err(Error::invalid(format!(
            "mount point {shown} is not a folder"
        )));
    }
    let parent = path
        .canonicalize()
        .map_err(|e| Error::io(format!("mount point {shown}"), e))?
        .join("..");
    let up =
        std::fs::metadata(&parent).map_err(|e| Error::io(format!("{}", parent.display()), e))?;
    if up.dev() != meta.dev() || up.ino() == meta.ino() {
        return Err(Error::new(
            ErrorKind::Io,
            format!("mount point {shown} is busy: something is already mounted there"),
        ));
    }
    let mut entries =
        std::fs::read_dir(path).map_err(|e| Error::io(format!("mount point {shown}"), e))?;
    if entries.next().is_some() {
        return Err(Error::invalid(format!(
            "mount point {shown} is not empty; mount on an empty folder"
        )));
    }
    if !Path::new(DEV_FUSE).exists() {
        return Err(Error::new(
            ErrorKind::Io,
            format!(
                "{DEV_FUSE} is missing: FUSE is not available here (load the fuse module, \
                 or give a container --device {DEV_FUSE})"
            ),
        ));
    }
    Ok(())
}

/// Mount the repository at `mountpoint` and serve it on threads of its own
/// until `unmount` (or an outside `umount`).
pub fn mount(repo: Arc<Repository>, mountpoint: &Path, opts: &MountOptions) -> Result<Mounted> {
    check_mountpoint(mountpoint)?;
    let filesystem = fs::VaultFs::new(repo, opts.refresh)?;
    let stats = filesystem.stats_handle();
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        MountOption::RO,
        MountOption::NoAtime,
        MountOption::FSName("vault".into()),
        MountOption::Subtype("vault".into()),
    ];
    config.n_threads = Some(opts.threads.max(1));
    if opts.allow_other {
        config.acl = SessionACL::All;
        // Other users get what the recorded mode, owner and group allow
        // them, as on the original file system: the kernel checks each
        // access. (Without allow_other only the mounting user, who holds
        // the password, reaches the mount at all.)
        if !opts.no_default_permissions {
            config.mount_options.push(MountOption::DefaultPermissions);
        }
    }
    let mut session = fuser::Session::new(filesystem, mountpoint, &config).map_err(|e| {
        Error::with_source(
            ErrorKind::Io,
            format!("cannot mount at {}", mountpoint.display()),
            e,
        )
    })?;
    let unmounter = session.unmount_callable();
    let handle = std::thread::Builder::new()
        .name("vault-mount".into())
        .spawn(move || session.run())
        .map_err(|e| Error::io("start the mount thread", e))?;
    Ok(Mounted {
        mountpoint: mountpoint.to_path_buf(),
        unmounter,
        session: Some(handle),
        stats,
    })
}

impl Mounted {
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    pub fn stats(&self) -> MountStats {
        self.stats.read()
    }

    /// Whether the file system was unmounted from outside (`umount`,
    /// `fusermount3 -u`) and has stopped serving.
    pub fn is_finished(&self) -> bool {
        self.session.as_ref().is_none_or(|h| h.is_finished())
    }

    /// Unmount and wait for the serving threads. If a program still has
    /// files open there, the mount is detached instead (it disappears
    /// now; those programs get errors) and this returns without waiting.
    pub fn unmount(mut self) -> Result<()> {
        let shown = self.mountpoint.display().to_string();
        match self.unmounter.unmount() {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                detach(&self.mountpoint)?;
                return Ok(());
            }
            Err(e) => {
                return Err(Error::with_source(
                    ErrorKind::Io,
                    format!("unmount {shown}"),
                    e,
                ))
            }
        }
        if let Some(handle) = self.session.take() {
            match handle.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    return Err(Error::with_source(
                        ErrorKind::Io,
                        format!("serving {shown}"),
                        e,
                    ))
                }
                Err(_) => return Err(Error::panicked(&format!("serving {shown}"))),
            }
        }
        Ok(())
    }
}

/// A lazy unmount: as root directly, otherwise through `fusermount3 -uz`.
fn detach(mountpoint: &Path) -> Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(mountpoint.as_os_str().as_bytes())
        .map_err(|_| Error::invalid("mount point contains NUL"))?;
    // SAFETY: c is a valid NUL-terminated path.
    if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } == 0 {
        return Ok(());
    }
    let status = std::process::Command::new("fusermount3")
        .arg("-u")
        .arg("-z")
        .arg("--")
        .arg(mountpoint)
        .status()
        .map_err(|e| Error::io("run fusermount3", e))?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::Io,
            format!(
                "cannot unmount {}: fusermount3 {status}",
                mountpoint.display()
            ),
        ))
    }
}
