use std::sync::{Arc, OnceLock};

use opendal::{blocking, services, ErrorKind as OdErrorKind, Operator};

use super::remote::{self, Transport};
use super::requests::{Counters, RequestCounts};
use super::{Backend, Location};
use crate::error::{Error, ErrorKind, Result};

/// Objects larger than this go up in parts of this size (S3 multipart): a
/// failed part is retried alone, and an upload never completed stays
/// invisible. Default 16 MiB packs still go up in one request.
const MULTIPART_CHUNK: usize = 32 << 20;

/// opendal's blocking operator drives async services on a runtime; one per
/// process is enough.
fn runtime() -> Result<&'static tokio::runtime::Runtime> {
    static RUNTIME: OnceLock<std::io::Result<tokio::runtime::Runtime>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("vault-io")
                .enable_all()
                .build()
        })
        .as_ref()
        .map_err(|e| Error::new(ErrorKind::Io, format!("cannot start the I/O runtime: {e}")))
}

pub struct OpendalBackend {
    op: blocking::Operator,
    name: String,
    /// For local repositories: the root, whose folders are fsynced after
    /// each write (opendal fsyncs the file, not the rename).
    local_root: Option<std::path::PathBuf>,
    /// Remote backends count their HTTP requests here.
    requests: Option<Arc<Counters>>,
    /// A local folder opened without a config: nothing may be written.
    read_only: bool,
}

impl OpendalBackend {
    /// Open storage at `location`. With `create`, a missing local folder is
    /// made; without, it must already exist.
    pub fn open(location: &Location, create: bool) -> Result<Self> {
        Self::open_with(location, create, &Transport::default())
    }

    /// Open storage with explicit transport settings (used by remote
    /// locations only; a local folder needs none).
    pub fn open_with(location: &Location, create: bool, transport: &Transport) -> Result<Self> {
        let mut local_root = None;
        let mut requests = None;
        let mut read_only = false;
        let op = match location {
            Location::Local(path) => {
                if !create && !path.is_dir() {
                    return Err(Error::new(
                        ErrorKind::NotARepository,
                        format!(
                            "{}: no repository here (the folder does not exist)",
                            path.display()
                        ),
                    ));
                }
                // Building the operator with its atomic-write folder creates
                // tmp/ below the root. A folder that holds no config yet is
                // opened read-only instead, so pointing at the wrong folder
                // changes nothing there; the repository layer then says what
                // is missing.
                read_only = !create && !path.join(crate::format::layout::CONFIG).is_file();
                let root = std::path::absolute(path)
                    .map_err(|e| Error::io(format!("{}", path.display()), e))?;
                local_root = Some(root.clone());
                let root = root.to_string_lossy().into_owned();
                // Writes land in tmp/ and are renamed into place after fsync,
                // so a killed process never leaves a torn object visible.
                let tmp = format!("{}/tmp", root.trim_end_matches('/'));
                let builder = services::Fs::default().root(&root);
                let builder = if read_only {
                    builder
                } else {
                    builder.atomic_write_dir(&tmp)
                };
                Operator::new(builder)
                    .map_err(|e| map_err(e, "open", &root))?
                    .finish()
            }
            Location::Memory => Operator::new(services::Memory::default())
                .map_err(|e| map_err(e, "open", "memory"))?
                .finish(),
            Location::Remote(r) => {
                // Building a remote operator needs the runtime (HTTP client).
                let _guard = runtime()?.enter();
                let (op, counters) = remote::operator(r, transport, &remote::process_env)?;
                requests = Some(counters);
                op
            }
        };
        let _guard = runtime()?.enter();
        let op = blocking::Operator::new(op).map_err(|e| map_err(e, "open", "storage"))?;
        let name = match location {
            Location::Remote(r) => match remote::endpoint(r, &remote::process_env) {
                Some(e) => format!("{location} at {e}"),
                None => location.to_string(),
            },
            _ => location.to_string(),
        };
        Ok(OpendalBackend {
            op,
            name,
            local_root,
            requests,
            read_only,
        })
    }

    fn writable(&self) -> Result<()> {
        if self.read_only {
            return Err(Error::new(
                ErrorKind::NotARepository,
                format!("{}: no repository here; nothing is changed", self.name),
            ));
        }
        Ok(())
    }

    /// Make a finished write survive power loss: the rename that made the
    /// object visible lives in its folder, and a new folder in its parent.
    /// Without this, a snapshot could outlive a pack it references.
    fn sync_folders(&self, path: &str) -> Result<()> {
        let Some(root) = &self.local_root else {
            return Ok(());
        };
        let mut dir = std::path::Path::new(path).parent();
        while let Some(d) = dir {
            let full = root.join(d);
            std::fs::File::open(&full)
                .and_then(|f| f.sync_all())
                .map_err(|e| Error::io(format!("sync folder {}", full.display()), e))?;
            if d.as_os_str().is_empty() {
                break;
            }
            dir = d.parent();
        }
        Ok(())
    }

    /// A failed request as the user should read it. Remote failures name
    /// the backend, the operation and the object, and say what to check.
    fn fail(&self, e: opendal::Error, op: &str, path: &str) -> Error {
        if is_no_space(&e) {
            return Error::new(
                ErrorKind::NoSpace,
                format!("{}: no space left on device ({op} {path})", self.name),
            );
        }
        if self.requests.is_none() {
            return map_err(e, op, path);
        }
        let (kind, reason) = remote::classify(&e);
        Error::new(kind, format!("{}: {op} {path}: {reason}", self.name))
    }
}

/// A full disk, which opendal reports as an unexpected (temporary) error
/// around the system's own.
fn is_no_space(e: &opendal::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::StorageFull
                || io.raw_os_error() == Some(libc::ENOSPC)
            {
                return true;
            }
        }
        cause = c.source();
    }
    let text = e.to_string();
    text.contains("No space left on device") || text.contains("os error 28")
}

fn map_err(e: opendal::Error, op: &str, path: &str) -> Error {
    let kind = match e.kind() {
        OdErrorKind::NotFound => ErrorKind::NotFound,
        OdErrorKind::AlreadyExists => ErrorKind::AlreadyExists,
        _ => ErrorKind::Io,
    };
    // opendal prints its own cause inside its message: held as a cause, the
    // cause's cause would be printed twice.
    Error::new(kind, format!("{op} {path}: {e}"))
}

impl OpendalBackend {
    /// A range past the end of an object fails as I/O in opendal; it is a
    /// truncated object, which is damage, not a failing disk.
    fn short_read(&self, e: Error, path: &str, offset: u64, len: u64) -> Error {
        match self.size(path) {
            Ok(size) if e.kind() == ErrorKind::Io && offset.saturating_add(len) > size => {
                Error::corrupt(format!(
                    "read {path}: wanted {len} bytes at {offset}, the object has {size} (truncated?)"
                ))
            }
            _ => e,
        }
    }
}

/// A range of a local object, read straight into a buffer of its length.
/// opendal's file reader hops through its runtime's threads in 2 MiB pieces
/// and then joins them: three copies of every byte where one does, and
/// twice the memory while a span of a pack is joined.
fn read_local_range(root: &std::path::Path, path: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let fail = |e: std::io::Error| local_read_error(path, e);
    let mut file = std::fs::File::open(root.join(path)).map_err(fail)?;
    let capacity = usize::try_from(len)
        .map_err(|_| Error::invalid(format!("read {path}: {len} bytes do not fit in memory")))?;
    let mut out = Vec::new();
    out.try_reserve_exact(capacity)
        .map_err(|_| Error::invalid(format!("read {path}: {len} bytes do not fit in memory")))?;
    file.seek(SeekFrom::Start(offset)).map_err(fail)?;
    (&mut file).take(len).read_to_end(&mut out).map_err(fail)?;
    if out.len() as u64 != len {
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        return Err(Error::corrupt(format!(
            "read {path}: wanted {len} bytes at {offset}, the object has {size} (truncated?)"
        )));
    }
    Ok(out)
}

/// A range of a local object into the caller's buffer, in one positional
/// read.
fn read_local_range_into(
    root: &std::path::Path,
    path: &str,
    offset: u64,
    out: &mut [u8],
) -> Result<()> {
    use std::os::unix::fs::FileExt;
    let file = std::fs::File::open(root.join(path)).map_err(|e| local_read_error(path, e))?;
    file.read_exact_at(out, offset).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => {
            let size = file.metadata().map(|m| m.len()).unwrap_or(0);
            Error::corrupt(format!(
                "read {path}: wanted {} bytes at {offset}, the object has {size} (truncated?)",
                out.len()
            ))
        }
        _ => local_read_error(path, e),
    })
}

fn local_read_error(path: &str, e: std::io::Error) -> Error {
    match e.kind() {
        std::io::ErrorKind::NotFound => {
            Error::new(ErrorKind::NotFound, format!("read {path}: {e}"))
        }
        _ => Error::io(format!("read {path}"), e),
    }
}

/// The buffer's bytes without a second copy where opendal holds them in
/// one piece: once the buffer is gone the bytes have one owner, and a
/// uniquely owned `Bytes` becomes a `Vec` in place.
fn into_vec(buf: opendal::Buffer) -> Vec<u8> {
    let bytes = buf.to_bytes();
    drop(buf);
    Vec::from(bytes)
}

impl Backend for OpendalBackend {
    fn describe(&self) -> String {
        self.name.clone()
    }

    fn is_local(&self) -> bool {
        self.local_root.is_some()
    }

    fn clean_tmp(&self, older_than: std::time::Duration) -> Result<u64> {
        let Some(root) = &self.local_root else {
            return Ok(0);
        };
        let dir = root.join("tmp");
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(Error::io(format!("{}", dir.display()), e)),
        };
        let now = std::time::SystemTime::now();
        let mut removed = 0;
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            let old = meta
                .modified()
                .ok()
                .and_then(|m| now.duration_since(m).ok())
                .is_some_and(|age| age > older_than);
            if meta.is_file() && old {
                match std::fs::remove_file(entry.path()) {
                    Ok(()) => removed += 1,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::io(format!("{}", entry.path().display()), e)),
                }
            }
        }
        Ok(removed)
    }

    fn read(&self, path: &str) -> Result<Vec<u8>> {
        self.op
            .read(path)
            .map_err(|e| self.fail(e, "read", path))
            .map(into_vec)
    }

    fn prefetch(&self, path: &str) {
        use std::os::fd::AsRawFd;
        let Some(root) = &self.local_root else { return };
        if let Ok(file) = std::fs::File::open(root.join(path)) {
            // SAFETY: the descriptor is open for the duration of the call.
            // A hint: its failure changes nothing but speed.
            unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_WILLNEED) };
        }
    }

    fn read_range_into(&self, path: &str, offset: u64, out: &mut [u8]) -> Result<()> {
        match &self.local_root {
            Some(root) => read_local_range_into(root, path, offset, out),
            None => super::read_range_copied(self, path, offset, out),
        }
    }

    fn read_range(&self, path: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        if let Some(root) = &self.local_root {
            return read_local_range(root, path, offset, len);
        }
        let buf = self
            .op
            .read_options(
                path,
                opendal::options::ReadOptions {
                    range: (offset..offset + len).into(),
                    ..Default::default()
                },
            )
            .map_err(|e| self.short_read(self.fail(e, "read", path), path, offset, len))?;
        if buf.len() as u64 != len {
            return Err(Error::corrupt(format!(
                "read {path}: wanted {len} bytes at {offset}, got {} (object truncated?)",
                buf.len()
            )));
        }
        Ok(into_vec(buf))
    }

    fn write(&self, path: &str, data: Vec<u8>) -> Result<()> {
        self.writable()?;
        self.op
            .write_options(
                path,
                data,
                opendal::options::WriteOptions {
                    chunk: Some(MULTIPART_CHUNK),
                    ..Default::default()
                },
            )
            .map_err(|e| self.fail(e, "write", path))?;
        self.sync_folders(path)
    }

    fn list(&self, dir: &str) -> Result<Vec<String>> {
        let entries = match self.op.list_options(
            dir,
            opendal::options::ListOptions {
                recursive: true,
                ..Default::default()
            },
        ) {
            Ok(entries) => entries,
            // An empty folder does not exist on most services; a missing
            // bucket is another matter.
            Err(e)
                if e.kind() == OdErrorKind::NotFound && !e.to_string().contains("NoSuchBucket") =>
            {
                return Ok(Vec::new())
            }
            Err(e) => return Err(self.fail(e, "list", dir)),
        };
        Ok(entries
            .into_iter()
            .filter(|e| !e.metadata().is_dir())
            .map(|e| e.path().to_string())
            .collect())
    }

    fn size(&self, path: &str) -> Result<u64> {
        Ok(self
            .op
            .stat(path)
            .map_err(|e| self.fail(e, "stat", path))?
            .content_length())
    }

    fn exists(&self, path: &str) -> Result<bool> {
        self.op.exists(path).map_err(|e| self.fail(e, "stat", path))
    }

    fn requests(&self) -> RequestCounts {
        self.requests
            .as_ref()
            .map(|c| c.snapshot())
            .unwrap_or_default()
    }

    fn delete(&self, path: &str) -> Result<()> {
        self.writable()?;
        self.op
            .delete(path)
            .map_err(|e| self.fail(e, "delete", path))
    }

    fn sync_deletions(&self, dir: &str) -> Result<()> {
        let Some(root) = &self.local_root else {
            return Ok(());
        };
        let full = root.join(dir);
        std::fs::File::open(&full)
            .and_then(|f| f.sync_all())
            .map_err(|e| Error::io(format!("sync folder {}", full.display()), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranges_into_a_kept_buffer(backend: &OpendalBackend) {
        backend.write("data/ab/x", (0..=255u8).collect()).unwrap();
        let mut buf = [0u8; 4];
        backend.read_range_into("data/ab/x", 10, &mut buf).unwrap();
        assert_eq!(buf, [10, 11, 12, 13]);
        assert_eq!(backend.read_range("data/ab/x", 10, 4).unwrap(), buf);
        // A hint, whether the object is there or not.
        backend.prefetch("data/ab/x");
        backend.prefetch("data/ab/y");
        let missing = backend.read_range_into("data/ab/y", 0, &mut buf);
        assert_eq!(missing.unwrap_err().kind(), ErrorKind::NotFound);
    }

    #[test]
    fn local_ranges_read_into_a_kept_buffer() {
        let dir = tempfile::tempdir().unwrap();
        let location = Location::Local(dir.path().to_path_buf());
        let backend = OpendalBackend::open(&location, true).unwrap();
        ranges_into_a_kept_buffer(&backend);
        // A truncated pack is damage, not a failing disk.
        let past_end = backend.read_range_into("data/ab/x", 254, &mut [0u8; 4]);
        assert_eq!(past_end.unwrap_err().kind(), ErrorKind::Corrupt);
    }

    #[test]
    fn other_ranges_read_into_a_kept_buffer() {
        ranges_into_a_kept_buffer(&OpendalBackend::open(&Location::Memory, true).unwrap());
    }
}
