//! `vault wal`: PostgreSQL's archive_command (`push`) and restore_command
//! (`fetch`), and the unlocked key file that makes them fast.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use vault::format::snapshot::Snapshot;
use vault::format::wal::WalFile;
use vault::format::Timestamp;
use vault::ops::wal_ahead::{push_ahead, Spool};
use vault::ops::wal_retention::kept_base;
use vault::ops::wal_status::{damage, gap_lines, wal_status};
use vault::repo::{IndexView, OpenOptions, Pushed, WalArchive, WalKeyFile};
use vault::{Id, Repository};

use super::{location, open_options, open_with, storage, WaitFor};
use crate::cli::args::Global;
use crate::cli::exit;

#[derive(Subcommand, Debug)]
pub enum WalCommand {
    /// Archive one WAL file (archive_command = 'vault wal push %p')
    Push(PushArgs),
    /// Restore one WAL file (restore_command = 'vault wal fetch %f %p');
    /// exits 1 without a message when the archive does not hold it
    Fetch(FetchArgs),
    /// Write an unlocked key file for push and fetch (owner-only, mode 600)
    KeyFile(KeyFileArgs),
    /// The archive per timeline: first and last segment, gaps and the
    /// targets they break, the newest file and its age (exit 4 on a gap)
    Status(StatusArgs),
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    pub key: KeySource,
}

#[derive(Args, Debug, Clone)]
pub struct KeySource {
    /// Unlocked key file written by `vault wal key-file`: no password and
    /// no key derivation per call
    #[arg(long, env = "VAULT_WAL_KEY_FILE", value_name = "FILE")]
    pub key_file: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct PushArgs {
    /// The file to archive (PostgreSQL's %p); its name is the archive name
    pub path: PathBuf,
    #[command(flatten)]
    pub key: KeySource,
    /// Also push up to N segments PostgreSQL has marked ready, in parallel,
    /// so that its next calls return at once (needs --spool)
    #[arg(long, value_name = "N", requires = "spool", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub ahead: Option<u16>,
    /// Folder for the notes of segments pushed ahead (outside the data
    /// directory)
    #[arg(long, value_name = "DIR", requires = "ahead")]
    pub spool: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct FetchArgs {
    /// The archived file's name (PostgreSQL's %f)
    pub name: String,
    /// Where to write it (PostgreSQL's %p)
    pub dest: PathBuf,
    #[command(flatten)]
    pub key: KeySource,
}

#[derive(Args, Debug)]
pub struct KeyFileArgs {
    /// The key file to create (refused if it exists)
    pub path: PathBuf,
}

pub(super) fn wal(g: &Global, c: WalCommand) -> Result<i32> {
    match c {
        WalCommand::Push(a) => push(g, &a),
        WalCommand::Fetch(a) => fetch(g, &a),
        WalCommand::Status(a) => status(g, &a),
        WalCommand::KeyFile(a) => {
            let repo = open_repo(g)?;
            WalKeyFile::create(&repo, &a.path)?;
            if !g.quiet {
                eprintln!(
                    "wrote {} (mode 600): it opens the repository without a password; \
                     keep it where only the archiving user can read it",
                    a.path.display()
                );
            }
            Ok(exit::OK)
        }
    }
}

/// The repository opened with the password, without reading the index
/// (WAL objects need none).
fn open_repo(g: &Global) -> Result<Arc<Repository>> {
    let options = OpenOptions {
        index: IndexView::Unread,
        ..open_options(g, WaitFor::Other)
    };
    open_with(g, &options)
}

/// Run `f` on the archive, opened by key file when one is given.
fn with_archive<T>(
    g: &Global,
    key: &KeySource,
    f: impl FnOnce(&WalArchive<'_>) -> Result<T>,
) -> Result<T> {
    match &key.key_file {
        Some(path) => {
            let key = WalKeyFile::load(path)?;
            let transport = open_options(g, WaitFor::Other).transport;
            let backend: Arc<dyn vault::storage::Backend> =
                storage(&location(g)?, false, &transport)?;
            f(&WalArchive::with_key(backend.as_ref(), &key)?)
        }
        None => {
            let repo = open_repo(g)?;
            f(&WalArchive::of(&repo)?)
        }
    }
}

fn status(g: &Global, a: &StatusArgs) -> Result<i32> {
    let st = with_archive(g, &a.key, |archive| {
        Ok(wal_status(archive, Timestamp::now())?)
    })?;
    if g.json {
        super::print_json(&serde_json::to_value(&st)?)?;
    } else if !g.quiet {
        println!("{} files archived", st.files);
        if let (Some(name), Some(pushed), Some(age)) =
            (&st.newest, &st.newest_pushed, st.newest_age_secs)
        {
            println!("newest   {name}, pushed {pushed} ({age}s ago: the current recovery point)");
        }
        for t in &st.timelines {
            println!(
                "timeline {}: {} to {} ({} segments)",
                t.timeline, t.first, t.last, t.segments
            );
        }
    }
    let gaps = gap_lines(&st.timelines);
    for line in &gaps {
        eprintln!("damage: {line}");
    }
    Ok(if gaps.is_empty() {
        exit::OK
    } else {
        exit::DAMAGE
    })
}

/// The damage of the WAL archive, for `check`: gaps and the base backups
/// they break, base backups that cannot be restored, and base backups
/// whose record of their WAL does not read. `snapshots` are those the
/// check could read (it names the others itself). A format 1 repository
/// has no archive.
pub(super) fn check_archive<'a>(
    repo: &Repository,
    snapshots: impl Iterator<Item = (&'a Id, &'a Snapshot)>,
) -> Result<Vec<String>> {
    let Ok(archive) = WalArchive::of(repo) else {
        return Ok(Vec::new());
    };
    let mut lines = Vec::new();
    let mut bases = Vec::new();
    for (id, snapshot) in snapshots {
        match kept_base(id, snapshot) {
            Ok(found) => bases.extend(found),
            Err(e) => lines.push(e.to_string()),
        }
    }
    lines.splice(0..0, damage(&archive.list()?, &bases));
    Ok(lines)
}

fn file_name(path: &Path) -> Result<WalFile> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .with_context(|| format!("{}: no file name", path.display()))?;
    Ok(WalFile::parse(name)?)
}

fn push(g: &Global, a: &PushArgs) -> Result<i32> {
    let file = file_name(&a.path)?;
    let bytes =
        std::fs::read(&a.path).map_err(|e| vault::Error::io(a.path.display().to_string(), e))?;
    let pushed = with_archive(g, &a.key, |archive| match (&a.spool, a.ahead) {
        (Some(dir), Some(ahead)) => Ok(push_ahead(
            archive,
            &a.path,
            &file,
            &bytes,
            &Spool::new(dir)?,
            usize::from(ahead),
        )?),
        _ => Ok(archive.push(&file, &bytes, Timestamp::now())?),
    })?;
    if !g.quiet && pushed == Pushed::AlreadyArchived {
        eprintln!("{}: already archived with the same contents", file.name());
    }
    Ok(exit::OK)
}

fn fetch(g: &Global, a: &FetchArgs) -> Result<i32> {
    let file = WalFile::parse(&a.name)?;
    let Some(bytes) = with_archive(g, &a.key, |archive| Ok(archive.fetch(&file)?))? else {
        // PostgreSQL asks for files past the end of the archive whenever
        // recovery ends; a non-zero exit below 126 tells it "not there".
        return Ok(exit::FAILURE);
    };
    write_durably(&a.dest, &bytes)?;
    Ok(exit::OK)
}

/// Write beside `dest` and rename, so PostgreSQL never reads a torn file.
fn write_durably(dest: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp = dest.as_os_str().to_owned();
    tmp.push(".vault-partial");
    let tmp = PathBuf::from(tmp);
    let place = dest.display().to_string();
    let written = std::fs::File::create(&tmp).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()
    });
    if let Err(e) = written.and_then(|_| std::fs::rename(&tmp, dest)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(vault::Error::io(place, e).into());
    }
    Ok(())
}
