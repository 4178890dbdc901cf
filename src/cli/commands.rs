use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use serde_json::json;
use vault::format::config::ChunkerParams;
use vault::format::keyfile::KdfParams;
use vault::format::snapshot::Snapshot;
use vault::format::tree::{Entry, EntryKind};
use vault::ops::restore::{restore, RestoreOptions};
use vault::ops::snapshot::{self, ParentChoice, SnapshotOptions, SnapshotOutcome};
use vault::ops::walk::{resolve, walk, Resolved};
use vault::ops::Progress;
use vault::repo::{CacheOptions, InitOptions, SnapshotFilter};
use vault::storage::{Location, OpendalBackend};
use vault::{Id, Repository};

use super::args::*;
use super::exit;
use super::output::{human_bytes, local_time, mode_string, rfc3339_utc, ProgressGuard};
use super::password::{new_password, repository_password};

fn data_home(var: &str, fallback: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(fallback)))
}

fn location(global: &Global) -> Result<Location> {
    match &global.repo {
        Some(r) => Ok(Location::parse(r)?),
        None => {
            let base = data_home("XDG_DATA_HOME", ".local/share").context(
                "no repository given and no home folder: use --repo or VAULT_REPOSITORY",
            )?;
            Ok(Location::Local(base.join("vault").join("repo")))
        }
    }
}

fn cache_options(global: &Global) -> CacheOptions {
    if global.no_cache {
        return CacheOptions { dir: None };
    }
    CacheOptions {
        dir: global
            .cache_dir
            .clone()
            .or_else(|| data_home("XDG_CACHE_HOME", ".cache").map(|d| d.join("vault"))),
    }
}

fn open(global: &Global) -> Result<Arc<Repository>> {
    let backend = Arc::new(OpendalBackend::open(&location(global)?, false)?);
    let password = repository_password(global)?;
    Ok(Arc::new(Repository::open(
        backend,
        &password,
        &cache_options(global),
    )?))
}

fn kdf(args: &KdfArgs) -> KdfParams {
    let d = KdfParams::default();
    KdfParams {
        memory_kib: args.kdf_memory_kib.unwrap_or(d.memory_kib),
        iterations: args.kdf_iterations.unwrap_or(d.iterations),
        parallelism: d.parallelism,
    }
}

fn filter(f: &Filter) -> SnapshotFilter {
    SnapshotFilter {
        hosts: f.hosts.clone(),
        tags: f.tags.clone(),
        paths: f.paths.iter().map(|p| p.as_bytes().to_vec()).collect(),
    }
}

fn print_json(value: &serde_json::Value) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

/// Run a command; the returned code is for a run that finished (warnings or
/// damage found); errors are mapped by the caller.
pub fn run(cli: Cli) -> Result<i32> {
    let g = &cli.global;
    match cli.command {
        Command::Init(a) => init(g, a),
        Command::Snapshot(a) => snapshot(g, a),
        Command::Snapshots(a) => snapshots(g, a),
        Command::Ls(a) => ls(g, a),
        Command::Restore(a) => restore_cmd(g, a),
        Command::Dump(a) => dump(g, a),
        Command::Key(k) => key(g, k),
    }
}

fn init(g: &Global, a: InitArgs) -> Result<i32> {
    let loc = location(g)?;
    let d = InitOptions::default();
    let options = InitOptions {
        chunker: ChunkerParams {
            min: a.chunk_min.unwrap_or(d.chunker.min),
            avg: a.chunk_avg.unwrap_or(d.chunker.avg),
            max: a.chunk_max.unwrap_or(d.chunker.max),
            ..d.chunker
        },
        pack_target: a
            .pack_size_mib
            .map(|m| m.saturating_mul(1 << 20))
            .unwrap_or(d.pack_target),
        compression: a.compression.unwrap_or(d.compression),
        kdf: kdf(&a.kdf),
    };
    let password = new_password(None, g, true)?;
    let backend = Arc::new(OpendalBackend::open(&loc, true)?);
    let repo = Repository::init(backend, &password, &options, &cache_options(g))?;
    if g.json {
        print_json(
            &json!({ "repository": loc.to_string(), "id": repo.config().repo_id.to_hex() }),
        )?;
    } else if !g.quiet {
        println!(
            "created repository {} at {loc}",
            repo.config().repo_id.short()
        );
    }
    Ok(exit::OK)
}

fn snapshot_options(meta: &SnapshotMeta, parent: ParentChoice) -> SnapshotOptions {
    SnapshotOptions {
        host: meta.host.clone(),
        tags: meta.tags.clone(),
        compression: meta.compression,
        parent,
        meta: vec![],
    }
}

fn snapshot(g: &Global, a: SnapshotArgs) -> Result<i32> {
    let repo = open(g)?;
    let progress = Arc::new(Progress::default());
    let outcome = {
        let _bar = ProgressGuard::start(progress.clone(), g.quiet || g.json, "snapshot");
        match (&a.source, a.stdin) {
            (Some(SnapshotSource::Cmd(c)), _) => {
                let opts = snapshot_options(&c.meta, ParentChoice::None);
                let (program, args) = c
                    .command
                    .split_first()
                    .context("no program given after --")?;
                snapshot::snapshot_command(&repo, &c.name, program, args, &opts, &progress)?
            }
            (None, true) => {
                if !a.paths.is_empty() {
                    bail!(vault::Error::invalid("--stdin takes no paths"));
                }
                let name = a
                    .name
                    .as_deref()
                    .ok_or_else(|| vault::Error::invalid("--stdin needs --name NAME"))?;
                let opts = snapshot_options(&a.meta, ParentChoice::None);
                // The descriptor itself, unbuffered: the chunker reads in
                // large blocks, and reads on another thread.
                use std::os::fd::AsFd;
                let stdin = std::io::stdin()
                    .as_fd()
                    .try_clone_to_owned()
                    .map(std::fs::File::from)
                    .context("reading standard input")?;
                snapshot::snapshot_stream(&repo, name, stdin, "stdin", &opts, &progress)?
            }
            (None, false) => {
                if a.paths.is_empty() {
                    bail!(vault::Error::invalid(
                        "nothing to snapshot: give paths, --stdin --name NAME, or 'cmd'"
                    ));
                }
                let parent = match (&a.parent, a.force) {
                    (_, true) => ParentChoice::None,
                    (Some(p), false) => {
                        ParentChoice::Id(repo.find_snapshot(p, &SnapshotFilter::default())?.0)
                    }
                    (None, false) => ParentChoice::Auto,
                };
                snapshot::snapshot_files(
                    &repo,
                    &a.paths,
                    &snapshot_options(&a.meta, parent),
                    &progress,
                )?
            }
        }
    };
    report_snapshot(g, &outcome)?;
    Ok(if outcome.warnings.is_empty() {
        exit::OK
    } else {
        exit::WARNINGS
    })
}

fn report_snapshot(g: &Global, o: &SnapshotOutcome) -> Result<()> {
    for w in &o.warnings {
        eprintln!("warning: {w}");
    }
    let s = &o.snapshot.summary;
    if g.json {
        print_json(&json!({
            "snapshot": o.id.to_hex(),
            "time": rfc3339_utc(o.snapshot.time),
            "files": s.files,
            "dirs": s.dirs,
            "bytes_read": s.bytes_read,
            "bytes_added": s.bytes_added,
            "raw_bytes_added": o.stats.raw_bytes_added,
            "blobs_added": s.blobs_added,
            "packs_written": o.stats.packs_written,
            "duration_ms": s.duration_ms,
            "warnings": o.warnings,
        }))?;
    } else if !g.quiet {
        println!(
            "snapshot {} saved: {} files, {} read, {} added ({} stored) in {:.1}s{}",
            o.id.short(),
            s.files,
            human_bytes(s.bytes_read),
            human_bytes(o.stats.raw_bytes_added),
            human_bytes(s.bytes_added),
            s.duration_ms as f64 / 1000.0,
            if o.warnings.is_empty() {
                String::new()
            } else {
                format!(", {} warnings", o.warnings.len())
            }
        );
    }
    Ok(())
}

fn snapshot_json(id: &Id, s: &Snapshot) -> serde_json::Value {
    json!({
        "id": id.to_hex(),
        "time": rfc3339_utc(s.time),
        "host": s.host,
        "user": s.user,
        "tags": s.tags,
        "source": s.source,
        "paths": s.paths.iter().map(|p| String::from_utf8_lossy(p).into_owned()).collect::<Vec<_>>(),
        "root": s.root.to_hex(),
        "parent": s.parent.map(|p| p.to_hex()),
        "summary": {
            "files": s.summary.files,
            "dirs": s.summary.dirs,
            "bytes_read": s.summary.bytes_read,
            "bytes_added": s.summary.bytes_added,
            "blobs_added": s.summary.blobs_added,
            "duration_ms": s.summary.duration_ms,
            "warnings": s.summary.warnings,
        },
    })
}

fn snapshots(g: &Global, a: SnapshotsArgs) -> Result<i32> {
    let repo = open(g)?;
    let f = filter(&a.filter);
    let list: Vec<_> = repo
        .snapshots()?
        .into_iter()
        .filter(|(_, s)| f.matches(s))
        .collect();
    if g.json {
        print_json(&serde_json::Value::Array(
            list.iter().map(|(id, s)| snapshot_json(id, s)).collect(),
        ))?;
        return Ok(exit::OK);
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<8}  {:<19}  {:<12}  {:<7}  {:>10}  {:>10}  {:<10}  paths",
        "id", "time", "host", "source", "size", "added", "tags"
    )?;
    for (id, s) in &list {
        let paths: Vec<_> = s
            .paths
            .iter()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect();
        writeln!(
            out,
            "{:<8}  {:<19}  {:<12}  {:<7}  {:>10}  {:>10}  {:<10}  {}",
            id.short(),
            local_time(s.time),
            s.host,
            s.source,
            human_bytes(s.summary.bytes_read),
            human_bytes(s.summary.bytes_added),
            s.tags.join(","),
            paths.join(" ")
        )?;
    }
    writeln!(out, "{} snapshots", list.len())?;
    Ok(exit::OK)
}

fn entry_json(path: &[u8], e: &Entry) -> serde_json::Value {
    json!({
        "path": String::from_utf8_lossy(path),
        "type": e.kind.as_str(),
        "mode": e.mode,
        "uid": e.uid,
        "gid": e.gid,
        "user": e.user,
        "group": e.group,
        "size": e.size,
        "mtime": rfc3339_utc(e.mtime),
        "damaged": e.flags & vault::format::tree::FLAG_DAMAGED != 0,
    })
}

fn ls(g: &Global, a: LsArgs) -> Result<i32> {
    let repo = open(g)?;
    let (_, snap) = repo.find_snapshot(&a.snapshot, &filter(&a.filter))?;
    let start = a.path.as_deref().unwrap_or("/");
    let resolved = resolve(&repo, &snap.root, start.as_bytes())?;
    let mut rows: Vec<(Vec<u8>, Entry)> = Vec::new();
    match &resolved {
        Resolved::Entry { parent, entry } if entry.kind != EntryKind::Dir => {
            rows.push((vault::ops::walk::join(parent, &entry.name), entry.clone()));
        }
        _ => {
            let base = match &resolved {
                Resolved::Entry { parent, entry } => vault::ops::walk::join(parent, &entry.name),
                Resolved::Root(_) => Vec::new(),
            };
            let tree = resolved.tree().context("not a directory")?;
            walk(&repo, &tree, &base, &mut |path, e| {
                rows.push((path.to_vec(), e.clone()));
                Ok(a.recursive)
            })?;
        }
    }
    let mut out = std::io::stdout().lock();
    if g.json {
        let v: Vec<_> = rows.iter().map(|(p, e)| entry_json(p, e)).collect();
        serde_json::to_writer_pretty(&mut out, &v)?;
        writeln!(out)?;
        return Ok(exit::OK);
    }
    for (path, e) in &rows {
        let shown = String::from_utf8_lossy(path);
        if a.long {
            let owner = if e.user.is_empty() {
                e.uid.to_string()
            } else {
                e.user.clone()
            };
            let group = if e.group.is_empty() {
                e.gid.to_string()
            } else {
                e.group.clone()
            };
            let mut line = format!(
                "{} {:<8} {:<8} {:>12} {} {shown}",
                mode_string(e.kind, e.mode),
                owner,
                group,
                e.size,
                local_time(e.mtime)
            );
            if let vault::format::tree::Content::Symlink { target } = &e.content {
                line.push_str(&format!(" -> {}", String::from_utf8_lossy(target)));
            }
            writeln!(out, "{line}")?;
        } else {
            writeln!(out, "{shown}")?;
        }
    }
    Ok(exit::OK)
}

/// `SNAP:PATH` splits at the first colon; a snapshot id never holds one.
fn split_snapshot_path(spec: &str) -> (&str, Option<&str>) {
    match spec.split_once(':') {
        Some((snap, path)) => (snap, Some(path)),
        None => (spec, None),
    }
}

fn restore_cmd(g: &Global, a: RestoreArgs) -> Result<i32> {
    let repo = open(g)?;
    let (snap_spec, sub_path) = split_snapshot_path(&a.snapshot);
    let (id, snap) = repo.find_snapshot(snap_spec, &filter(&a.filter))?;
    let opts = RestoreOptions {
        target: a.target.clone(),
        include: a.include.clone(),
        exclude: a.exclude.clone(),
        sub_path: sub_path.map(|p| p.as_bytes().to_vec()),
    };
    let progress = Arc::new(Progress::default());
    let started = std::time::Instant::now();
    let outcome = {
        let _bar = ProgressGuard::start(progress.clone(), g.quiet || g.json, "restore");
        restore(&repo, &snap.root, &opts, &progress)?
    };
    for e in &outcome.errors {
        eprintln!("error: {e}");
    }
    if g.json {
        print_json(&json!({
            "snapshot": id.to_hex(),
            "target": a.target.to_string_lossy(),
            "files": outcome.files,
            "dirs": outcome.dirs,
            "bytes": outcome.bytes,
            "errors": outcome.errors,
            "duration_ms": started.elapsed().as_millis() as u64,
        }))?;
    } else if !g.quiet {
        println!(
            "restored snapshot {} to {}: {} files, {} folders, {} in {:.1}s{}",
            id.short(),
            a.target.display(),
            outcome.files,
            outcome.dirs,
            human_bytes(outcome.bytes),
            started.elapsed().as_secs_f64(),
            if outcome.errors.is_empty() {
                String::new()
            } else {
                format!(", {} errors", outcome.errors.len())
            }
        );
    }
    Ok(match (outcome.errors.is_empty(), outcome.damaged) {
        (true, _) => exit::OK,
        (false, true) => exit::DAMAGE,
        (false, false) => exit::FAILURE,
    })
}

fn dump(g: &Global, a: DumpArgs) -> Result<i32> {
    let repo = open(g)?;
    let (_, snap) = repo.find_snapshot(&a.snapshot, &filter(&a.filter))?;
    let entry = match &a.path {
        Some(p) => match resolve(&repo, &snap.root, p.as_bytes())? {
            Resolved::Entry { entry, .. } => entry,
            Resolved::Root(_) => bail!(vault::Error::invalid(
                "give the path of a file, not the root"
            )),
        },
        None => {
            let tree = repo.read_tree(&snap.root)?;
            match tree.entries.as_slice() {
                [only] if only.kind == EntryKind::File => only.clone(),
                _ => bail!(vault::Error::invalid(
                    "this snapshot holds more than one file: name the one to dump"
                )),
            }
        }
    };
    if entry.kind != EntryKind::File {
        bail!(vault::Error::invalid(format!(
            "{} is a {}, not a file",
            String::from_utf8_lossy(&entry.name),
            entry.kind.as_str()
        )));
    }
    let stdout = std::io::stdout();
    if stdout.is_terminal() && !g.quiet {
        eprintln!("note: writing {} to the terminal", human_bytes(entry.size));
    }
    let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    let reader = vault::repo::BlobReader::new(&repo, vault::ops::content::SEQUENTIAL_READAHEAD);
    vault::ops::content::for_each_chunk(&reader, entry.chunks(), &mut |_, data| {
        let data = data.map_err(|e| e.at(String::from_utf8_lossy(&entry.name)))?;
        out.write_all(&data)
            .map_err(|e| vault::Error::io("writing to standard output", e))?;
        Ok(true)
    })?;
    out.flush()
        .map_err(|e| vault::Error::io("writing to standard output", e))?;
    Ok(exit::OK)
}

fn key(g: &Global, k: KeyCommand) -> Result<i32> {
    match k {
        KeyCommand::List => {
            let repo = open(g)?;
            let keys = repo.list_keys()?;
            if g.json {
                print_json(&serde_json::Value::Array(
                    keys.iter()
                        .map(|k| json!({"id": k.id.to_hex(), "current": k.current, "created": rfc3339_utc(k.created), "host": k.host, "user": k.user}))
                        .collect(),
                ))?;
            } else {
                println!(" {:<8}  {:<19}  {:<12}  user", "id", "created", "host");
                for k in keys {
                    println!(
                        "{}{:<8}  {:<19}  {:<12}  {}",
                        if k.current { "*" } else { " " },
                        k.id.short(),
                        local_time(k.created),
                        k.host,
                        k.user
                    );
                }
            }
        }
        KeyCommand::Add {
            new_password_file,
            kdf: kdf_args,
        } => {
            let repo = open(g)?;
            let password = new_password(new_password_file.as_deref(), g, false)?;
            let id = repo.add_key(&password, &kdf(&kdf_args))?;
            if !g.quiet {
                println!("added key {}", id.short());
            }
        }
        KeyCommand::Remove { id } => {
            let repo = open(g)?;
            let id = repo.find_key(&id)?;
            repo.remove_key(&id)?;
            if !g.quiet {
                println!("removed key {}", id.short());
            }
        }
        KeyCommand::Passwd {
            new_password_file,
            kdf: kdf_args,
        } => {
            let repo = open(g)?;
            let password = new_password(new_password_file.as_deref(), g, false)?;
            let mut repo =
                Arc::try_unwrap(repo).map_err(|_| anyhow::anyhow!("repository still shared"))?;
            let id = repo.change_password(&password, &kdf(&kdf_args))?;
            if !g.quiet {
                println!("password changed; new key {}", id.short());
            }
        }
    }
    Ok(exit::OK)
}
