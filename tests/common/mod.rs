//! Shared harness for the integration tests: a temporary repository driven
//! through the built `vault` binary, deterministic data generators, and
//! comparisons of restored trees and streams against their sources.
//!
//! Every test module of `tests/tests.rs` uses a different subset of it.

pub mod db_snapshots;
pub mod mariadb;
pub mod postgres;
pub mod prune;
pub mod redis;
pub mod s3;
pub mod services;

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

pub const BIN: &str = env!("CARGO_BIN_EXE_vault");
pub const PASSWORD: &str = "correct horse battery staple";
pub const MIB: u64 = 1 << 20;
/// `init` options for chunks a quarter of the default size: more chunks
/// per file in small tests.
pub const SMALL_CHUNKS: &[&str] = &[
    "--chunk-min",
    "16384",
    "--chunk-avg",
    "65536",
    "--chunk-max",
    "262144",
];

/// A scratch area with a repository path, a cache, a home folder and room
/// for sources and restore targets. Nothing outside it is touched.
pub struct Vault {
    root: TempDir,
    pub repo: PathBuf,
    pub cache: PathBuf,
    pub home: PathBuf,
    pub password: String,
    /// Extra environment for every run (a remote repository's endpoint and
    /// credentials).
    pub env: Vec<(String, String)>,
}

impl Vault {
    /// The repository opened through the library (no local cache, so the
    /// index is read as it is in storage).
    pub fn library(&self) -> vault::Repository {
        let location = vault::storage::Location::Local(self.repo.clone());
        let backend = Arc::new(vault::storage::OpendalBackend::open(&location, false).unwrap());
        vault::Repository::open(
            backend,
            self.password.as_bytes(),
            &vault::repo::OpenOptions::default(),
        )
        .unwrap()
    }

    /// A scratch area without a repository yet.
    pub fn empty() -> Self {
        let root = tempfile::Builder::new()
            .prefix("vault-it-")
            .tempdir()
            .expect("temp dir");
        let repo = root.path().join("repo");
        let cache = root.path().join("cache");
        let home = root.path().join("home");
        fs::create_dir(&cache).unwrap();
        fs::create_dir(&home).unwrap();
        Vault {
            root,
            repo,
            cache,
            home,
            password: PASSWORD.to_string(),
            env: Vec::new(),
        }
    }

    /// A scratch area with an initialised repository (fast KDF).
    pub fn init() -> Self {
        Self::init_with(&[])
    }

    /// Like `init`, with extra `init` options (`--pack-size-mib 1`, ...).
    pub fn init_with(extra: &[&str]) -> Self {
        let v = Self::empty();
        v.init_here(extra);
        assert!(v.repo.join("config").is_file(), "init wrote no config");
        v
    }

    /// `init` with a fast KDF and `extra` options at this area's location
    /// (a folder, or a remote URL with its environment).
    pub fn init_here(&self, extra: &[&str]) -> Output {
        let mut args = vec!["init", "--kdf-memory-kib", "64", "--kdf-iterations", "1"];
        args.extend_from_slice(extra);
        self.ok(&args)
    }

    pub fn path(&self) -> &Path {
        self.root.path()
    }

    /// A new, empty folder inside the scratch area.
    pub fn dir(&self, name: &str) -> PathBuf {
        let p = self.root.path().join(name);
        fs::create_dir_all(&p).unwrap();
        p
    }

    /// `vault -r REPO ARGS...` with a controlled environment and the
    /// repository password.
    pub fn cmd<S: AsRef<OsStr>>(&self, args: &[S]) -> Command {
        self.cmd_with_password(&self.password, args)
    }

    pub fn cmd_with_password<S: AsRef<OsStr>>(&self, password: &str, args: &[S]) -> Command {
        let mut c = Command::new(BIN);
        self.configure(&mut c, password);
        c.arg("-r").arg(&self.repo).args(args);
        c
    }

    /// The same environment for any program (used to run vault through
    /// `setpriv`).
    pub fn configure(&self, c: &mut Command, password: &str) {
        for var in [
            "VAULT_REPOSITORY",
            "VAULT_PASSWORD_FILE",
            "VAULT_PASSWORD_COMMAND",
            "VAULT_NEW_PASSWORD",
            "XDG_DATA_HOME",
            "XDG_CACHE_HOME",
            "AWS_SESSION_TOKEN",
            "AWS_PROFILE",
        ] {
            c.env_remove(var);
        }
        c.envs(self.env.iter().map(|(k, v)| (k, v)));
        c.env("HOME", &self.home)
            .env("VAULT_PASSWORD", password)
            .env("VAULT_CACHE_DIR", &self.cache)
            .stdin(Stdio::null());
    }

    pub fn run<S: AsRef<OsStr>>(&self, args: &[S]) -> Output {
        output(self.cmd(args))
    }

    /// Run and insist on exit code 0.
    pub fn ok<S: AsRef<OsStr>>(&self, args: &[S]) -> Output {
        let out = self.run(args);
        assert_success(&out, &describe(args));
        out
    }

    /// Run with `--json`, insist on success, parse stdout.
    pub fn json<S: AsRef<OsStr>>(&self, args: &[S]) -> Value {
        let mut all: Vec<OsString> = vec!["--json".into()];
        all.extend(args.iter().map(|a| a.as_ref().to_owned()));
        parse_json(&self.ok(&all))
    }

    /// `snapshot --stdin --name NAME` fed from `data`; returns the process
    /// output (the caller checks the exit code).
    pub fn snapshot_stdin_output(
        &self,
        name: &str,
        data: impl Read + Send + 'static,
        extra: &[&str],
    ) -> Output {
        let mut args = vec!["--json", "snapshot", "--stdin", "--name", name];
        args.extend_from_slice(extra);
        run_with_stdin(self.cmd(&args), data)
    }

    /// `snapshot --stdin --name NAME`, expected to succeed; its JSON summary.
    pub fn snapshot_stdin(&self, name: &str, data: impl Read + Send + 'static) -> Value {
        let out = self.snapshot_stdin_output(name, data, &[]);
        assert_success(&out, &format!("snapshot --stdin --name {name}"));
        parse_json(&out)
    }

    /// `snapshot PATH...`, expected to succeed; its JSON summary.
    pub fn snapshot_paths<P: AsRef<OsStr>>(&self, paths: &[P]) -> Value {
        let mut args: Vec<OsString> = vec!["snapshot".into()];
        args.extend(paths.iter().map(|p| p.as_ref().to_owned()));
        self.json(&args)
    }

    /// All snapshots, oldest first, from `snapshots --json`.
    pub fn snapshots(&self) -> Vec<Value> {
        match self.json(&["snapshots"]) {
            Value::Array(v) => v,
            other => panic!("snapshots --json is not an array: {other}"),
        }
    }

    /// `dump SNAP [PATH]`, streaming stdout into `expected` for comparison.
    pub fn assert_dump_matches(&self, snap: &str, path: Option<&Path>, expected: impl Read) {
        let mut args: Vec<OsString> = vec!["dump".into(), snap.into()];
        if let Some(p) = path {
            args.push(p.as_os_str().to_owned());
        }
        let mut child = self
            .cmd(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn vault dump");
        let watchdog = Watchdog::start(&child);
        let stdout = child.stdout.take().unwrap();
        let compared = compare_streams(expected, stdout);
        let out = child.wait_with_output().unwrap();
        watchdog.stop();
        assert_success(&out, &format!("dump {snap} {path:?}"));
        if let Err(e) = compared {
            panic!("dump {snap} {path:?}: {e}");
        }
    }

    /// `restore SPEC --target TARGET [extra]`, expected to succeed.
    pub fn restore(&self, spec: &str, target: &Path, extra: &[&str]) -> Value {
        let mut args: Vec<OsString> = vec![
            "restore".into(),
            spec.into(),
            "--target".into(),
            target.into(),
        ];
        args.extend(extra.iter().map(OsString::from));
        self.json(&args)
    }

    /// Every object path in the repository with its bytes.
    pub fn repo_files(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        let mut out = BTreeMap::new();
        collect_files(&self.repo, &self.repo, &mut out);
        out
    }

    /// Object names under one repository folder (`data`, `index`, ...).
    pub fn objects(&self, dir: &str) -> Vec<PathBuf> {
        let mut out = BTreeMap::new();
        let base = self.repo.join(dir);
        if base.exists() {
            collect_files(&base, &base, &mut out);
        }
        out.into_keys().collect()
    }
}

fn collect_files(base: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        if entry.file_type().unwrap().is_dir() {
            collect_files(base, &path, out);
        } else {
            out.insert(
                path.strip_prefix(base).unwrap().to_path_buf(),
                fs::read(&path).unwrap(),
            );
        }
    }
}

fn describe<S: AsRef<OsStr>>(args: &[S]) -> String {
    args.iter()
        .map(|a| a.as_ref().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Spawn `cmd` with `data` on its stdin (from a thread, so a large stream
/// cannot deadlock against a full stdout pipe) and collect its output.
pub fn run_with_stdin(mut cmd: Command, mut data: impl Read + Send + 'static) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn vault");
    let watchdog = Watchdog::start(&child);
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        // A child that stops reading early (an error) closes the pipe;
        // its exit code tells the test what happened.
        let _ = io::copy(&mut data, &mut stdin);
    });
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    watchdog.stop();
    out
}

/// How long any one vault run may take before it counts as hung.
pub const RUN_LIMIT: Duration = Duration::from_secs(120);

/// Kills a child that runs longer than `RUN_LIMIT`, so a deadlock fails
/// the test (killed by a signal, reported as such) instead of hanging it.
pub struct Watchdog {
    done: Arc<AtomicBool>,
    fired: Arc<AtomicBool>,
}

impl Watchdog {
    pub fn start(child: &Child) -> Self {
        let pid = child.id() as libc::pid_t;
        let done = Arc::new(AtomicBool::new(false));
        let fired = Arc::new(AtomicBool::new(false));
        let (d, f) = (done.clone(), fired.clone());
        std::thread::spawn(move || {
            let deadline = Instant::now() + RUN_LIMIT;
            while !d.load(Ordering::SeqCst) {
                if Instant::now() >= deadline {
                    f.store(true, Ordering::SeqCst);
                    // SAFETY: kill has no memory preconditions; the child
                    // has not been reaped (done is still false).
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Watchdog { done, fired }
    }

    pub fn stop(self) {
        self.done.store(true, Ordering::SeqCst);
        assert!(
            !self.fired.load(Ordering::SeqCst),
            "vault ran longer than {RUN_LIMIT:?} and was killed (hung?)"
        );
    }
}

/// Run to completion under the watchdog, capturing stdout and stderr.
pub fn output(mut cmd: Command) -> Output {
    cmd.watched_output()
}

/// `Command::output` under the watchdog.
pub trait Watched {
    fn watched_output(&mut self) -> Output;
}

impl Watched for Command {
    fn watched_output(&mut self) -> Output {
        let child = self
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let watchdog = Watchdog::start(&child);
        let out = child.wait_with_output().unwrap();
        watchdog.stop();
        out
    }
}

/// Run `f` on a thread and fail if it takes longer than `RUN_LIMIT` (for
/// library calls that could deadlock).
pub fn within_limit<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(RUN_LIMIT) {
        Ok(v) => v,
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("{what} did not finish within {RUN_LIMIT:?} (hung?)")
        }
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => panic!("{what} panicked"),
    }
}

/// The exit code; a vault killed by a signal is a test failure.
pub fn code(out: &Output) -> i32 {
    match out.status.code() {
        Some(c) => c,
        None => panic!(
            "vault ended by a signal: {:?}\nstderr: {}",
            out.status,
            stderr(out)
        ),
    }
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn assert_success(out: &Output, what: &str) {
    assert_eq!(
        code(out),
        0,
        "`vault {what}` failed\nstderr: {}\nstdout: {}",
        stderr(out),
        stdout(out)
    );
}

pub fn assert_code(out: &Output, expected: i32, what: &str) {
    assert_eq!(
        code(out),
        expected,
        "`{what}`: unexpected exit code\nstderr: {}\nstdout: {}",
        stderr(out),
        stdout(out)
    );
}

/// Errors are exactly one line on stderr, starting with `vault: `. Returns it.
pub fn one_line_error(out: &Output) -> String {
    let err = stderr(out);
    // The snapshot a command chose is named before it fails; not an error.
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| !l.starts_with("using snapshot "))
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "expected one line on stderr, got {}: {err:?}",
        lines.len()
    );
    assert!(
        lines[0].starts_with("vault: "),
        "error line does not start with 'vault: ': {err:?}"
    );
    lines[0].to_string()
}

pub fn parse_json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            stdout(out),
            stderr(out)
        )
    })
}

pub fn json_u64(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no number '{key}' in {v}"))
}

pub fn json_str<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("no string '{key}' in {v}"))
}

// ---------------------------------------------------------------------------
// Deterministic data

/// splitmix64: small, fast and good enough to make incompressible bytes.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        let mut chunks = buf.chunks_exact_mut(8);
        for c in &mut chunks {
            c.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        let rest = chunks.into_remainder();
        let last = self.next_u64().to_le_bytes();
        rest.copy_from_slice(&last[..rest.len()]);
    }
}

const WORDS: &[&str] = &[
    "INSERT",
    "INTO",
    "accounts",
    "VALUES",
    "(",
    ")",
    "NULL",
    "'2024-01-01'",
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "vault",
    "backup",
    "chunk",
    "pack",
    "index",
    "snapshot",
    "restore",
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "lazy",
    "dog",
    "0",
    "1",
    "42",
    "3.14159",
    "true",
    "false",
];

/// A deterministic byte stream of a given length: either all random, or a
/// mix of compressible text segments and random segments.
pub struct Gen {
    rng: Rng,
    remaining: u64,
    mixed: bool,
    segment: Vec<u8>,
    pos: usize,
}

impl Gen {
    /// Incompressible bytes.
    pub fn random(seed: u64, len: u64) -> Self {
        Gen {
            rng: Rng::new(seed),
            remaining: len,
            mixed: false,
            segment: Vec::new(),
            pos: 0,
        }
    }

    /// Alternating segments (4 KiB to 512 KiB) of text-like and random bytes.
    pub fn mixed(seed: u64, len: u64) -> Self {
        Gen {
            rng: Rng::new(seed),
            remaining: len,
            mixed: true,
            segment: Vec::new(),
            pos: 0,
        }
    }

    pub fn bytes(self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.remaining as usize);
        let mut g = self;
        g.read_to_end(&mut v).unwrap();
        v
    }

    fn refill(&mut self) {
        self.pos = 0;
        self.segment.clear();
        if !self.mixed {
            self.segment.resize(1 << 16, 0);
            self.rng.fill(&mut self.segment);
            return;
        }
        let len = 4096 + self.rng.below(508 << 10) as usize;
        if self.rng.below(2) == 0 {
            self.segment.resize(len, 0);
            self.rng.fill(&mut self.segment);
        } else {
            while self.segment.len() < len {
                let w = WORDS[self.rng.below(WORDS.len() as u64) as usize];
                self.segment.extend_from_slice(w.as_bytes());
                self.segment
                    .push(if self.rng.below(12) == 0 { b'\n' } else { b' ' });
            }
            self.segment.truncate(len);
        }
    }
}

impl Read for Gen {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        if self.pos == self.segment.len() {
            self.refill();
        }
        let n = buf
            .len()
            .min(self.segment.len() - self.pos)
            .min(self.remaining as usize);
        buf[..n].copy_from_slice(&self.segment[self.pos..self.pos + n]);
        self.pos += n;
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// `inner` with `insert` spliced in after `at` bytes.
pub struct Splice<R> {
    inner: R,
    before: u64,
    insert: Vec<u8>,
    inserted: usize,
}

impl<R: Read> Splice<R> {
    pub fn new(inner: R, at: u64, insert: Vec<u8>) -> Self {
        Splice {
            inner,
            before: at,
            insert,
            inserted: 0,
        }
    }
}

impl<R: Read> Read for Splice<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.before > 0 {
            let n = (buf.len() as u64).min(self.before) as usize;
            let got = self.inner.read(&mut buf[..n])?;
            self.before -= got as u64;
            if got == 0 {
                self.before = 0;
            }
            return Ok(got);
        }
        if self.inserted < self.insert.len() {
            let n = buf.len().min(self.insert.len() - self.inserted);
            buf[..n].copy_from_slice(&self.insert[self.inserted..self.inserted + n]);
            self.inserted += n;
            return Ok(n);
        }
        self.inner.read(buf)
    }
}

fn fill_block(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Compare two streams block by block; on a difference, say where.
pub fn compare_streams(mut expected: impl Read, mut actual: impl Read) -> Result<u64, String> {
    let mut a = vec![0u8; 1 << 20];
    let mut b = vec![0u8; 1 << 20];
    let mut offset = 0u64;
    loop {
        let na = fill_block(&mut expected, &mut a).map_err(|e| format!("reading expected: {e}"))?;
        let nb = fill_block(&mut actual, &mut b).map_err(|e| format!("reading actual: {e}"))?;
        if a[..na] != b[..nb] {
            let at = a[..na]
                .iter()
                .zip(&b[..nb])
                .position(|(x, y)| x != y)
                .unwrap_or(na.min(nb));
            return Err(format!(
                "streams differ at byte {} (expected block of {na} bytes, got {nb})",
                offset + at as u64
            ));
        }
        offset += na as u64;
        if na == 0 {
            return Ok(offset);
        }
    }
}

pub fn assert_file_matches(path: &Path, expected: impl Read) {
    let f = fs::File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    if let Err(e) = compare_streams(expected, f) {
        panic!("{}: {e}", path.display());
    }
}

// ---------------------------------------------------------------------------
// Building and comparing trees

pub fn os(bytes: &[u8]) -> &OsStr {
    OsStr::from_bytes(bytes)
}

pub fn write(path: &Path, data: &[u8]) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    fs::write(path, data).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

pub fn write_gen(path: &Path, gen: Gen) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    let mut gen = gen;
    let mut f = fs::File::create(path).unwrap();
    io::copy(&mut gen, &mut f).unwrap();
    f.flush().unwrap();
}

pub fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

fn cpath(path: &Path) -> std::ffi::CString {
    std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap()
}

/// Set atime and mtime to the same instant, without following symlinks.
pub fn set_mtime(path: &Path, secs: i64, nanos: u32) {
    let t = libc::timespec {
        tv_sec: secs as libc::time_t,
        tv_nsec: nanos as libc::c_long,
    };
    let times = [t, t];
    let c = cpath(path);
    // SAFETY: c is a valid NUL-terminated path and times holds two timespecs.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    assert_eq!(
        rc,
        0,
        "utimensat {}: {}",
        path.display(),
        io::Error::last_os_error()
    );
}

pub fn mkfifo(path: &Path, mode: u32) {
    let c = cpath(path);
    // SAFETY: c is a valid NUL-terminated path.
    let rc = unsafe { libc::mkfifo(c.as_ptr(), mode as libc::mode_t) };
    assert_eq!(
        rc,
        0,
        "mkfifo {}: {}",
        path.display(),
        io::Error::last_os_error()
    );
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Change owner without following symlinks, recursively.
pub fn chown_tree(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).unwrap();
    if fs::symlink_metadata(path).unwrap().is_dir() {
        for e in fs::read_dir(path).unwrap() {
            chown_tree(&e.unwrap().path(), uid, gid);
        }
    }
}

fn kind_of(m: &fs::Metadata) -> &'static str {
    let t = m.file_type();
    if t.is_symlink() {
        "symlink"
    } else if t.is_dir() {
        "dir"
    } else if t.is_file() {
        "file"
    } else if t.is_fifo() {
        "fifo"
    } else if t.is_socket() {
        "socket"
    } else {
        "device"
    }
}

fn compare_entry(exp: &Path, act: &Path, out: &mut Vec<String>) {
    let em = fs::symlink_metadata(exp).unwrap_or_else(|e| panic!("{}: {e}", exp.display()));
    let am = match fs::symlink_metadata(act) {
        Ok(m) => m,
        Err(e) => {
            out.push(format!("{}: missing after restore ({e})", act.display()));
            return;
        }
    };
    let shown = act.display();
    if kind_of(&em) != kind_of(&am) {
        out.push(format!(
            "{shown}: is a {}, expected a {}",
            kind_of(&am),
            kind_of(&em)
        ));
        return;
    }
    if !em.file_type().is_symlink() && em.mode() & 0o7777 != am.mode() & 0o7777 {
        out.push(format!(
            "{shown}: mode {:o}, expected {:o}",
            am.mode() & 0o7777,
            em.mode() & 0o7777
        ));
    }
    if (em.mtime(), em.mtime_nsec()) != (am.mtime(), am.mtime_nsec()) {
        out.push(format!(
            "{shown}: mtime {}.{:09}, expected {}.{:09}",
            am.mtime(),
            am.mtime_nsec(),
            em.mtime(),
            em.mtime_nsec()
        ));
    }
    if (em.uid(), em.gid()) != (am.uid(), am.gid()) {
        out.push(format!(
            "{shown}: owner {}:{}, expected {}:{}",
            am.uid(),
            am.gid(),
            em.uid(),
            em.gid()
        ));
    }
    let t = em.file_type();
    if t.is_file() {
        if em.len() != am.len() {
            out.push(format!("{shown}: size {}, expected {}", am.len(), em.len()));
        } else if let Err(e) =
            compare_streams(fs::File::open(exp).unwrap(), fs::File::open(act).unwrap())
        {
            out.push(format!("{shown}: {e}"));
        }
    } else if t.is_symlink() {
        let (et, at) = (fs::read_link(exp).unwrap(), fs::read_link(act).unwrap());
        if et != at {
            out.push(format!(
                "{shown}: symlink to {}, expected {}",
                at.display(),
                et.display()
            ));
        }
    } else if t.is_dir() {
        compare_children(exp, act, out);
    }
}

fn names(dir: &Path) -> Vec<OsString> {
    let mut v: Vec<OsString> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    v.sort();
    v
}

fn compare_children(exp: &Path, act: &Path, out: &mut Vec<String>) {
    let (en, an) = (names(exp), names(act));
    for extra in an.iter().filter(|n| !en.contains(n)) {
        out.push(format!("{}: not in the source", act.join(extra).display()));
    }
    for name in &en {
        compare_entry(&exp.join(name), &act.join(name), out);
    }
}

/// `actual` is `expected`: same kind, mode, owner, mtime (to the
/// nanosecond), content and symlink targets, recursively.
pub fn assert_same_tree(expected: &Path, actual: &Path) {
    let mut problems = Vec::new();
    compare_entry(expected, actual, &mut problems);
    assert!(
        problems.is_empty(),
        "restored tree differs from its source:\n  {}",
        problems.join("\n  ")
    );
}

/// Like `assert_same_tree`, but the two roots' own metadata is not compared.
pub fn assert_same_contents(expected: &Path, actual: &Path) {
    let mut problems = Vec::new();
    compare_children(expected, actual, &mut problems);
    assert!(
        problems.is_empty(),
        "restored tree differs from its source:\n  {}",
        problems.join("\n  ")
    );
}

/// Where a files snapshot of `src` lands when restored whole into `target`.
pub fn restored_at(target: &Path, src: &Path) -> PathBuf {
    target.join(src.strip_prefix("/").expect("absolute source path"))
}

/// Relative paths of everything below `dir` (folders end with `/`).
pub fn listing(dir: &Path) -> Vec<String> {
    fn go(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let rel = p.strip_prefix(base).unwrap().to_string_lossy().into_owned();
            if e.file_type().unwrap().is_dir() {
                out.push(format!("{rel}/"));
                go(base, &p, out);
            } else {
                out.push(rel);
            }
        }
    }
    let mut out = Vec::new();
    go(dir, dir, &mut out);
    out.sort();
    out
}
pub mod faults;
pub mod held;
pub mod mount;
