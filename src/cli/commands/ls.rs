use std::io::Write;

use anyhow::{Context, Result};
use clap::Args;
use serde_json::json;
use vault::format::tree::{Entry, EntryKind};
use vault::ops::walk::{resolve, walk, Resolved};

use vault::repo::SnapshotFilter;

use super::filter::Filter;
use super::{filter, open, resolve_snapshot};
use crate::cli::args::Global;
use crate::cli::exit;
use crate::cli::output::{local_time, mode_string, rfc3339_utc};

#[derive(Args, Debug)]
pub struct LsArgs {
    /// Snapshot id (or unique prefix), or 'latest'
    pub snapshot: String,
    /// Folder inside the snapshot
    pub path: Option<String>,
    /// Show mode, owner, size and modification time
    #[arg(short, long)]
    pub long: bool,
    /// List everything below, not just one folder
    #[arg(short = 'R', long)]
    pub recursive: bool,
    #[command(flatten)]
    pub filter: Filter,
}

pub(super) fn entry_json(path: &[u8], e: &Entry) -> serde_json::Value {
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

pub(super) fn ls(g: &Global, a: LsArgs) -> Result<i32> {
    let repo = open(g)?;
    let scope = SnapshotFilter {
        holding: a.path.as_ref().map(|p| p.as_bytes().to_vec()),
        ..filter(&a.filter)
    };
    let (_, snap) = resolve_snapshot(g, &repo, &a.snapshot, &scope)?;
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
